/**
 * Typed errors. Every error the SDK throws for a Nexus answer is a {@link NexusError}; the subclasses say what to
 * do about it. No message, `toString()` or inspection output ever holds a credential or an API key: messages are
 * built from the problem's `code`, `title` and `detail` (RFC 9457), which Nexus never fills with secrets, and from
 * connection ids, which are not secrets.
 */

/** An RFC 9457 problem as Nexus sends it: `type`, `title`, `status`, `detail` and a stable `code`. */
export interface Problem {
  type?: string;
  title?: string;
  /** The HTTP status, or (on a 409 `connection_not_active`) the connection's status, which Nexus also names `status`. */
  status?: number | string;
  detail?: string;
  code?: string;
  [extension: string]: unknown;
}

const inspectSymbol = Symbol.for("nodejs.util.inspect.custom");

/** The base class of every error the SDK throws about a Nexus answer or call. */
export class NexusError extends Error {
  /** The HTTP status Nexus answered with; 0 when no answer arrived (timeout, network). */
  readonly status: number;
  /**
   * The problem's `code` (`not_found`, `connection_not_active`…; without one, what its `type` names after
   * `urn:nexus:problem:`), or a code of the SDK's own (`timeout`, `network_error`); "" for an answer that came
   * without a Nexus problem (a proxy's error page).
   */
  readonly code: string;
  /** The problem body Nexus sent, when there was one. */
  readonly problem: Problem | undefined;

  constructor(message: string, status: number, code: string, problem?: Problem, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.problem = problem;
  }

  /** What `util.inspect` (and so `console.log`) shows: the name, message, status and code, nothing else. */
  [inspectSymbol](): string {
    return `${this.name}: ${this.message} (status ${this.status}, code ${this.code})\n${stackFrames(this.stack)}`;
  }
}

/** 401: the API key is missing, unknown or revoked. */
export class AuthenticationError extends NexusError {}

/** 403: the API key may not do this (another workspace, `credentials_not_readable`…). */
export class ForbiddenError extends NexusError {}

/** 404: the connection (or workspace) does not exist, or the API key may not see it (Nexus does not tell them apart). */
export class NotFoundError extends NexusError {}

/**
 * Any other answer that is not a success: 400/409/422 and the other 4xx that say the request itself must change, a
 * 500 `internal_error` (or another 5xx but 502/503/504), a bug in Nexus, not a passing state, and a 3xx from Nexus's
 * API (a redirect, which the SDK does not follow: `X-API-Key` goes to Nexus only). Never retried, and a 500 ends
 * `waitUntilActive` at once.
 */
export class RequestError extends NexusError {}

/**
 * 409 `connection_not_active` for a connection that is `pending` or `failed` (or `attention_required`: then it is
 * the subclass AttentionRequiredError): wait for consent (`pending`) or request a new connection (`failed`); also
 * 409 `connection_failed` (credentials submitted to a failed connection: `connectionStatus` `failed`, the connection
 * the call was about). Never retried automatically.
 */
export class NotActiveError extends NexusError {
  readonly connectionId: string | undefined;
  /** The connection's status: `pending`, `failed`… */
  readonly connectionStatus: string;
  /** Why, when Nexus says (`access_denied`, `expired`…). */
  readonly reason: string | undefined;

  constructor(message: string, status: number, code: string, problem: Problem | undefined, connectionId: string | undefined, connectionStatus: string, reason: string | undefined) {
    super(message, status, code, problem);
    this.connectionId = connectionId;
    this.connectionStatus = connectionStatus;
    this.reason = reason;
  }
}

/**
 * The provider rejected the connection's grant (`invalid_grant`: the user revoked access) or its token expired
 * without a refresh token (`token_expired`): the user must connect again. Never retried automatically. A kind of
 * NotActiveError (`connectionStatus` `attention_required`), as in the Go (`errors.As` finds a `*NotActiveError`) and
 * Python (a subclass of `NotActive`) SDKs: `instanceof NotActiveError` holds for it too.
 */
export class AttentionRequiredError extends NotActiveError {
  constructor(message: string, status: number, code: string, problem: Problem | undefined, connectionId: string | undefined, reason: string | undefined) {
    super(message, status, code, problem, connectionId, "attention_required", reason);
  }
}

/**
 * 429: Nexus asks this caller to slow down. `retryAfter` is the `Retry-After` Nexus sent, in seconds. (503
 * `aws_sts_throttled` is an UnavailableError: AWS STS throttles Nexus, not this caller.)
 */
export class RateLimitedError extends NexusError {
  readonly retryAfter: number | undefined;

  constructor(message: string, status: number, code: string, problem: Problem | undefined, retryAfter: number | undefined) {
    super(message, status, code, problem);
    this.retryAfter = retryAfter;
  }
}

/**
 * 502/503/504 only: Nexus or the provider behind it is unavailable right now (`refresh_unavailable`,
 * `upstream_unreachable`, `aws_sts_throttled`…). `retryAfter` is the `Retry-After` Nexus sent, in seconds. A 500
 * (or another 5xx) is a RequestError; no answer at all is a NetworkError or a TimeoutError.
 */
export class UnavailableError extends NexusError {
  readonly retryAfter: number | undefined;

  constructor(message: string, status: number, code: string, problem: Problem | undefined, retryAfter: number | undefined) {
    super(message, status, code, problem);
    this.retryAfter = retryAfter;
  }
}

/** Nexus did not answer in time (the client's `timeoutMs`, or `waitUntilActive`'s timeout). */
export class TimeoutError extends NexusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 0, "timeout", undefined, options);
  }
}

/** Nexus could not be reached (connection refused, reset, DNS). */
export class NetworkError extends NexusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 0, "network_error", undefined, options);
  }
}

/** The client is missing its configuration (`NEXUS_URL`, `NEXUS_API_KEY`) or got an argument it cannot use. */
export class ConfigurationError extends NexusError {
  constructor(message: string) {
    super(message, 0, "configuration_error");
  }
}

/** Parses `Retry-After` (delta seconds or an HTTP date, RFC 9110 §10.2.3) into seconds. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === "") {
    return undefined;
  }
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) {
    return Number(trimmed);
  }
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

/** The `type` of Nexus's own problems: `urn:nexus:problem:<code>`. */
const PROBLEM_TYPE_PREFIX = "urn:nexus:problem:";

/**
 * Builds the typed error for a Nexus answer that is not a success. `connectionId` is the id the call was about,
 * used when the problem does not carry one.
 */
export function errorFromResponse(status: number, problem: Problem | undefined, retryAfterHeader: string | null, connectionId?: string, rawBody?: string): NexusError {
  // Only Nexus's own problem code: an answer without one (a proxy's error page) has "", as in the other SDKs. A code
  // made up from the status (a bare 404's "not_found") read as Nexus's word that the connection is gone. A problem
  // without a code (or with an empty one) whose type is `urn:nexus:problem:<code>` has that code, as in Go.
  const code = typeof problem?.code === "string" && problem.code !== "" ? problem.code
    : typeof problem?.type === "string" && problem.type.startsWith(PROBLEM_TYPE_PREFIX) ? problem.type.slice(PROBLEM_TYPE_PREFIX.length)
    : "";
  const describe = (fallback: string) => describeProblem(problem, fallback);
  const retryAfter = parseRetryAfter(retryAfterHeader);
  if (status === 409 && code === "connection_not_active") {
    // The problem carries both the HTTP status (a number) and the connection's status (a string) under "status";
    // whichever JSON.parse kept, the string is also looked for in the raw body.
    const connStatus = typeof problem?.status === "string" ? problem.status : connectionStatusIn(rawBody) ?? "unknown";
    const id = typeof problem?.["connection_id"] === "string" ? String(problem["connection_id"]) : connectionId;
    const reason = typeof problem?.["error"] === "string" ? String(problem["error"]) : undefined;
    if (connStatus === "attention_required") {
      return new AttentionRequiredError(
        `Connection ${id ?? "(unknown)"} needs the user to connect again (attention_required${reason ? `: ${reason}` : ""}).`,
        status, code, problem, id, reason);
    }
    return new NotActiveError(
      `Connection ${id ?? "(unknown)"} is ${connStatus}, not active${reason ? ` (${reason})` : ""}.`,
      status, code, problem, id, connStatus, reason);
  }
  if (status === 409 && code === "connection_failed") {
    // Nexus's problem names neither the connection nor its status: the connection is the call's, and it is failed.
    return new NotActiveError(`Connection ${connectionId ?? "(unknown)"} is failed, not active: request a new one.`,
      status, code, problem, connectionId, "failed", undefined);
  }
  switch (status) {
    case 401:
      return new AuthenticationError(describe("A valid API key is required."), status, code, problem);
    case 403:
      return new ForbiddenError(describe("This API key may not do that."), status, code, problem);
    case 404:
      return new NotFoundError(describe(connectionId ? `Connection ${connectionId} was not found.` : "Not found."), status, code, problem);
    case 429:
      return new RateLimitedError(describe("Too many requests."), status, code, problem, retryAfter);
    case 502:
    case 503:
    case 504:
      return new UnavailableError(describe("Nexus or the provider is unavailable."), status, code, problem, retryAfter);
    default:
      // A 500 (or another 5xx but 502/503/504) is a bug in Nexus, not a passing state: the generic error, as Go's
      // *APIError and .NET's NexusException.
      return new RequestError(describe(status >= 500 ? `Nexus failed to answer (HTTP ${status}).`
        : status < 400 ? `Nexus answered with a redirect (HTTP ${status}), which is not followed.`
        : `Nexus refused the request (HTTP ${status}).`), status, code, problem);
  }
}

function connectionStatusIn(rawBody: string | undefined): string | undefined {
  const match = rawBody ? /"status"\s*:\s*"([a-z_]+)"/.exec(rawBody) : null;
  return match ? match[1] : undefined;
}

function describeProblem(problem: Problem | undefined, fallback: string): string {
  if (!problem) {
    return fallback;
  }
  const title = typeof problem.title === "string" && problem.title ? problem.title : fallback;
  const detail = typeof problem.detail === "string" && problem.detail ? ` ${problem.detail}` : "";
  const code = typeof problem.code === "string" ? ` [${problem.code}]` : "";
  return `${title}${detail}${code}`;
}

function stackFrames(stack: string | undefined): string {
  if (!stack) {
    return "";
  }
  const lines = stack.split("\n");
  return lines.filter((line) => line.trimStart().startsWith("at ")).join("\n");
}
