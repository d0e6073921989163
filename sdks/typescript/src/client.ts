import { applyCredentials, isReplayable } from "./apply.js";
import { Credentials, REDACTED, type TokenResponse } from "./credentials.js";
import {
  AttentionRequiredError,
  ConfigurationError,
  NetworkError,
  NexusError,
  NotActiveError,
  RateLimitedError,
  TimeoutError,
  UnavailableError,
  errorFromResponse,
  type Problem,
} from "./errors.js";

/** A `fetch`-compatible function. */
export type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/**
 * How calls to Nexus are retried (the policy every Nexus SDK follows; see the README's Retries): only idempotent
 * requests (GET, HEAD, OPTIONS, PUT, DELETE), only after Nexus's own 429, 502, 503 or 504 or a connection that failed
 * before any answer; never a POST or PATCH, a 500, another 4xx, a timeout or the caller's abort.
 */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3: the first and two retries). */
  maxAttempts?: number;
  /** The first backoff when Nexus sent no `Retry-After` (default 250 ms); it doubles per retry, with full jitter. */
  baseDelayMs?: number;
  /** The largest backoff (default 5 s). */
  maxDelayMs?: number;
  /** A `Retry-After` longer than this is not waited for: the error is thrown at once, carrying it (default 10 s). */
  maxRetryAfterMs?: number;
}

export interface NexusOptions {
  /** Nexus's base URL. Default: the `NEXUS_URL` environment variable (where `process` exists). */
  baseUrl?: string;
  /** The API key (`X-API-Key`). Default: the `NEXUS_API_KEY` environment variable (where `process` exists). */
  apiKey?: string;
  /** The fetch used for every call, to Nexus and to providers (default: `globalThis.fetch`). */
  fetch?: FetchLike;
  /** How long one call to Nexus may take, in milliseconds (default 30 s), and one Bridge attempt until its answer's headers; one that times out is not retried. */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** Credentials are fetched again this long before they expire (default 60 s; at most half their remaining life). */
  refreshMarginSeconds?: number;
  /** How long credentials that do not expire (API keys, Basic, AWS keys) are cached (default 300 s). */
  maxCacheSeconds?: number;
  /** The clock, in milliseconds (tests). */
  now?: () => number;
  /** A random number in [0, 1) for jitter (tests). */
  random?: () => number;
}

/** Per-call options: every call takes an AbortSignal. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** A connection, as `GET /v1/connections/{id}` describes it (Unix seconds). */
export interface Connection {
  connectionId: string;
  /** `pending`, `active`, `attention_required` or `failed`. */
  status: string;
  provider: string;
  workspaceId: string;
  scopes: string[];
  createdAt: number;
  updatedAt: number;
  /** Pending: when the consent window closes; active: when the access token expires; null otherwise. */
  expiresAt: number | null;
  error: string | null;
  errorDescription: string | null;
  /** The per-connection values of the provider's URLs (`{ shop: "acme" }`); empty when it has none. */
  connectionConfig: Record<string, string>;
  /** The scopes the provider granted; null while nothing is granted. */
  grantedScopes: string[] | null;
  /** When a refresh last succeeded (Unix seconds), or null. */
  lastRefreshedAt: number | null;
  /** When Nexus next refreshes (or retries) the token (Unix seconds), or null when nothing is scheduled. */
  nextRefreshAt: number | null;
  /** Transient refresh failures in a row; 0 when healthy. */
  consecutiveFailures: number;
  /** The last error (a failing refresh's, or why the connection stopped) in plain words; null when none. Never a secret. */
  lastError: ConnectionError | null;
  /** True while a reconnect waits for the user's consent (the current credentials keep working meanwhile). */
  reconnecting: boolean;
}

/** A connection's last error: the provider's or Nexus's code and a plain-words message. */
export interface ConnectionError {
  code: string;
  message: string;
}

export interface RequestConnectionInput {
  workspaceId: string;
  /** The registered provider's name. */
  provider: string;
  scopes?: string[];
  /** Where Nexus sends the user's browser after consent (must be allowed by Nexus's ALLOWED_RETURN_URLS). */
  returnUrl: string;
  /** Per-connection values the provider's URLs need (`{ shop: "acme" }`); Nexus asks the user for those missing. */
  connectionConfig?: Record<string, string>;
}

export interface ReconnectInput {
  /** The scopes to ask for; the connection's own by default. */
  scopes?: string[];
  /** Where Nexus sends the user's browser after consent; the connection's own by default. */
  returnUrl?: string;
}

export interface RequestConnectionResult {
  /**
   * Send the user's browser here to give consent. Absent when the connection needs no consent (a machine-to-machine
   * server): it is active already, and `status` says so.
   */
  authUrl?: string;
  /** Store this with the user. */
  connectionId: string;
  /**
   * The connection's status when Nexus's answer gives one: `"active"` for a machine-to-machine server's connection,
   * which needs no consent. Absent when the answer is a consent URL.
   */
  status?: string;
}

export interface ListConnectionsInput {
  workspaceId?: string;
  /** `pending`, `active`, `attention_required` or `failed`. */
  status?: string;
  /** A registered provider's name. */
  provider?: string;
  /** The page size, 1 to 1000 (Nexus's default 100). */
  limit?: number;
  /** A `nextCursor` from an earlier page of the same list (same filters). */
  cursor?: string;
}

/** One page of `GET /v1/connections`, newest first; `nextCursor` is null on the last page. */
export interface ConnectionPage {
  connections: Connection[];
  nextCursor: string | null;
}

export interface WaitOptions extends CallOptions {
  /** Give up after this long (default 5 minutes): throws TimeoutError. */
  timeoutMs?: number;
  /** The first polling interval (default 250 ms); it grows by half each time up to 5 s. */
  intervalMs?: number;
}

export interface ConnectionFetchOptions {
  /**
   * Send requests through the Nexus Bridge instead of applying the credentials here: the input is then a path
   * relative to the provider's `api_base_url` (`/repos/x/y`), or an absolute URL whose path and query are used.
   */
  bridge?: boolean;
}

export interface RequestOptions extends CallOptions {
  /** A JSON body. */
  body?: unknown;
  /** Retry on 429/502/503/504 and a connection that failed before any answer (default: true for GET, HEAD, OPTIONS, PUT, DELETE). */
  idempotent?: boolean;
  /** Use this API key instead of the client's (admin calls with the bootstrap key). */
  apiKey?: string;
  /** Query parameters. */
  query?: Record<string, string | number | undefined>;
}

/** While Nexus cannot be reached, still-valid cached credentials are served this long before the next try. */
const STALE_RETRY_MS = 5_000;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
/** As fetch: a chain of more redirects than this fails. */
const MAX_REDIRECTS = 20;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const inspectSymbol = Symbol.for("nodejs.util.inspect.custom");

interface CacheEntry {
  credentials: Credentials;
  /** Milliseconds: served from the cache until then. */
  freshUntil: number;
}

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const value = proc?.env?.[name];
  return value === undefined || value === "" ? undefined : value;
}

/**
 * The Nexus client: connections, credentials (cached, one fetch per connection at a time) and a `fetch` that
 * applies a connection's credentials to each request.
 *
 * ```ts
 * const nexus = new Nexus();                       // NEXUS_URL, NEXUS_API_KEY
 * const github = nexus.fetch(connectionId);        // (input, init) => Promise<Response>
 * const me = await (await github("https://api.github.com/user")).json();
 * ```
 */
export class Nexus {
  /** Nexus's base URL, without a trailing slash. */
  readonly baseUrl: string;
  readonly #apiKey: string;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  readonly #retry: Required<RetryOptions>;
  readonly #marginMs: number;
  readonly #maxCacheMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, { generation: number; promise: Promise<Credentials> }>();
  readonly #generations = new Map<string, number>();
  readonly #recovering = new Map<string, Promise<Credentials | undefined>>();

  constructor(options: NexusOptions = {}) {
    const baseUrl = options.baseUrl ?? env("NEXUS_URL");
    const apiKey = options.apiKey ?? env("NEXUS_API_KEY");
    if (!baseUrl) {
      throw new ConfigurationError("Nexus's URL is missing: pass baseUrl or set NEXUS_URL.");
    }
    if (!apiKey) {
      throw new ConfigurationError("The API key is missing: pass apiKey or set NEXUS_API_KEY.");
    }
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      throw new ConfigurationError("Nexus's URL is not an absolute http(s) URL.");
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new ConfigurationError("Nexus's URL is not an absolute http(s) URL.");
    }
    this.baseUrl = parsed.href.replace(/\/+$/, "");
    this.#apiKey = apiKey;
    const f = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!f) {
      throw new ConfigurationError("No fetch: pass options.fetch on a runtime without globalThis.fetch.");
    }
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#retry = {
      maxAttempts: Math.max(1, options.retry?.maxAttempts ?? 3),
      baseDelayMs: options.retry?.baseDelayMs ?? 250,
      maxDelayMs: options.retry?.maxDelayMs ?? 5_000,
      maxRetryAfterMs: options.retry?.maxRetryAfterMs ?? 10_000,
    };
    this.#marginMs = (options.refreshMarginSeconds ?? 60) * 1000;
    this.#maxCacheMs = (options.maxCacheSeconds ?? 300) * 1000;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  // ---- Connections ----

  /**
   * `POST /v1/request-connection`: a pending connection and the URL where the user gives consent. A machine-to-machine
   * server's connection needs no consent: it is active at once, with no `authUrl` and `status: "active"`. Not retried.
   */
  async requestConnection(input: RequestConnectionInput, options: CallOptions = {}): Promise<RequestConnectionResult> {
    const body: Record<string, unknown> = { workspace_id: input.workspaceId, provider_name: input.provider, return_url: input.returnUrl };
    if (input.scopes) {
      body["scopes"] = input.scopes;
    }
    if (input.connectionConfig && Object.keys(input.connectionConfig).length > 0) {
      body["connection_config"] = input.connectionConfig;
    }
    return toRequested(await this.request<RawRequested>("POST", "/v1/request-connection", { ...options, body }));
  }

  /** `GET /v1/connections/{id}`. Throws NotFoundError for an unknown id (or one outside the key's workspaces). */
  async getConnection(connectionId: string, options: CallOptions = {}): Promise<Connection> {
    return toConnection(await this.request<RawConnection>("GET", `/v1/connections/${segment(connectionId)}`, options, connectionId));
  }

  /** `GET /v1/connections`: the first page, newest first. `connections()` walks every page. */
  async listConnections(input: ListConnectionsInput = {}, options: CallOptions = {}): Promise<Connection[]> {
    return (await this.listConnectionsPage(input, options)).connections;
  }

  /** One page of `GET /v1/connections`; pass its `nextCursor` back as `cursor` (same filters) for the next one. */
  async listConnectionsPage(input: ListConnectionsInput = {}, options: CallOptions = {}): Promise<ConnectionPage> {
    const result = await this.request<{ connections: RawConnection[]; next_cursor?: string | null }>("GET", "/v1/connections", {
      ...options,
      query: { workspace_id: input.workspaceId, status: input.status, provider: input.provider, limit: input.limit, cursor: input.cursor },
    });
    return { connections: result.connections.map(toConnection), nextCursor: result.next_cursor ?? null };
  }

  /**
   * Every connection the filters select, newest first, page after page (`limit` per page) as the iteration goes:
   * `for await (const c of nexus.connections({ status: "attention_required" })) { … }`.
   */
  async *connections(input: Omit<ListConnectionsInput, "cursor"> = {}, options: CallOptions = {}): AsyncGenerator<Connection, void, undefined> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.listConnectionsPage({ ...input, cursor }, options);
      yield* page.connections;
      if (!page.nextCursor) {
        return;
      }
      cursor = page.nextCursor;
    }
  }

  /**
   * `POST /v1/connections/{id}/reconnect`: a new consent for the **same** connection id (send the user to `authUrl`).
   * The current credentials keep working until the user completes it; then Nexus swaps in the new tokens and revokes
   * the old ones at the provider. A machine-to-machine server's connection needs no consent: Nexus gets it a new token
   * at once, and the answer has no `authUrl` and `status: "active"`. A provider that takes credentials answers 409
   * `not_an_oauth_connection` (RequestError). Not retried.
   */
  async reconnect(connectionId: string, input: ReconnectInput = {}, options: CallOptions = {}): Promise<RequestConnectionResult> {
    const body: Record<string, unknown> = {};
    if (input.scopes) {
      body["scopes"] = input.scopes;
    }
    if (input.returnUrl) {
      body["return_url"] = input.returnUrl;
    }
    return toRequested(await this.request<RawRequested>("POST", `/v1/connections/${segment(connectionId)}/reconnect`, { ...options, body }, connectionId));
  }

  /**
   * `DELETE /v1/connections/{id}`: revokes at the provider (best effort) and deletes; the cached credentials go too.
   * Retried as an idempotent call: a 404 on a retry is success (the attempt whose answer was lost deleted it).
   */
  async deleteConnection(connectionId: string, options: CallOptions = {}): Promise<void> {
    try {
      await this.request<void>("DELETE", `/v1/connections/${segment(connectionId)}`, options, connectionId);
    } finally {
      this.invalidate(connectionId);
    }
  }

  /**
   * Polls the connection until it is `active` and not `reconnecting` (a reconnect waiting for the user's consent keeps
   * polling, whatever the status) and returns it. Throws AttentionRequiredError or NotActiveError when
   * it ends up `attention_required` or `failed`, TimeoutError when it is still pending after `timeoutMs`. A poll that
   * fails transiently (what the retry policy retries: a 429 RateLimitedError, a 502/503/504 UnavailableError without a
   * Nexus code or with one of TRANSIENT_CODES, a NetworkError; and a request's TimeoutError) does not end the wait:
   * polling goes on (not sooner than the answer's `retryAfter`) until the deadline, and then that last error is thrown,
   * since it, not the user's consent, is why the connection was not seen active. Any other error ends the wait at once:
   * a 500 `internal_error` (a RequestError with `status` 500), a bug in Nexus, not a passing state, that polling
   * through would only hide; and a 502/503/504 UnavailableError with another code (`token_request_failed`, …), a
   * refusal that asking again does not change.
   */
  async waitUntilActive(connectionId: string, options: WaitOptions = {}): Promise<Connection> {
    const timeoutMs = options.timeoutMs ?? 300_000;
    const deadline = this.#now() + timeoutMs;
    let interval = options.intervalMs ?? 250;
    for (;;) {
      let wait = interval;
      let transient: NexusError | undefined;
      try {
        const connection = await this.getConnection(connectionId, options);
        // A reconnect of an active or attention_required connection keeps that status until the user completes the new
        // consent; a consent that fails clears `reconnecting`, and the status then decides.
        switch (connection.reconnecting ? "pending" : connection.status) {
          case "active":
            return connection;
          case "attention_required":
            throw new AttentionRequiredError(
              `Connection ${connectionId} needs the user to connect again (attention_required${connection.error ? `: ${connection.error}` : ""}).`,
              409, "connection_not_active", undefined, connectionId, connection.error ?? undefined);
          case "pending":
            break;
          default:
            throw new NotActiveError(`Connection ${connectionId} is ${connection.status}, not active${connection.error ? ` (${connection.error})` : ""}.`,
              409, "connection_not_active", undefined, connectionId, connection.status, connection.error ?? undefined);
        }
      } catch (error) {
        if (!isTransient(error) || isRefusal(error)) {
          throw error;
        }
        transient = error;
        if ((error instanceof UnavailableError || error instanceof RateLimitedError) && error.retryAfter !== undefined) {
          wait = Math.max(wait, error.retryAfter * 1000);
        }
      }
      const left = deadline - this.#now();
      if (left <= 0) {
        throw transient ?? new TimeoutError(`Connection ${connectionId} was still pending after ${timeoutMs} ms.`);
      }
      await sleep(Math.min(wait, left), options.signal);
      interval = Math.min(interval * 1.5, 5_000);
    }
  }

  /**
   * `POST /v1/refresh/{id}`: refresh now, whatever the expiry; the cached credentials are dropped. Throws
   * AttentionRequiredError when the provider rejects the grant.
   */
  async refresh(connectionId: string, options: CallOptions = {}): Promise<Connection> {
    this.invalidate(connectionId);
    try {
      return toConnection(await this.request<RawConnection>("POST", `/v1/refresh/${segment(connectionId)}`, options, connectionId));
    } finally {
      this.invalidate(connectionId);
    }
  }

  /** `POST /v1/connections/{id}/credentials`: stores an api_key, basic_auth or aws_sigv4 connection's fields. */
  async submitCredentials(connectionId: string, fields: Record<string, string>, options: CallOptions = {}): Promise<Connection> {
    const result = await this.request<RawConnection>("POST", `/v1/connections/${segment(connectionId)}/credentials`, { ...options, body: fields }, connectionId);
    this.invalidate(connectionId);
    return toConnection(result);
  }

  // ---- Credentials ----

  /**
   * The connection's credentials (`GET /v1/token/{id}`), cached until shortly before they expire. Concurrent
   * callers of a connection whose credentials are not cached share one fetch. The signal only stops this caller's
   * wait: the shared fetch goes on for the others (bounded by the client's timeout).
   */
  async getCredentials(connectionId: string, options: CallOptions = {}): Promise<Credentials> {
    const entry = this.#cache.get(connectionId);
    if (entry !== undefined && this.#now() < entry.freshUntil) {
      return entry.credentials;
    }
    options.signal?.throwIfAborted();
    const generation = this.#generations.get(connectionId) ?? 0;
    let flight = this.#inflight.get(connectionId);
    if (flight === undefined || flight.generation !== generation) {
      const promise = this.#fetchCredentials(connectionId, generation);
      flight = { generation, promise };
      this.#inflight.set(connectionId, flight);
      const current = flight;
      const clear = () => {
        if (this.#inflight.get(connectionId) === current) {
          this.#inflight.delete(connectionId);
        }
      };
      promise.then(clear, clear);
    }
    return options.signal ? raceSignal(flight.promise, options.signal) : flight.promise;
  }

  /** Drops a connection's cached credentials; the next call fetches them again. */
  invalidate(connectionId: string): void {
    this.#generations.set(connectionId, (this.#generations.get(connectionId) ?? 0) + 1);
    this.#cache.delete(connectionId);
    this.#inflight.delete(connectionId);
  }

  async #fetchCredentials(connectionId: string, generation: number): Promise<Credentials> {
    let response: TokenResponse;
    try {
      response = await this.request<TokenResponse>("GET", `/v1/token/${segment(connectionId)}`, {}, connectionId);
    } catch (error) {
      // Nexus unreachable or busy while the cached credentials are due for a fetch but not yet expired: keep using
      // them for a few seconds (as Nexus itself serves a valid token while the provider is down). Never for
      // attention_required, not found or any other answer about the connection itself, nor for a 500 (a
      // RequestError: a bug in Nexus, not a passing state), nor for a 502/503/504 refusal (token_request_failed, …:
      // the refresh failed for good): isTransient and isRefusal, the classification waitUntilActive uses.
      const stale = this.#cache.get(connectionId);
      const now = this.#now();
      if (isTransient(error) && !isRefusal(error) && stale !== undefined && stale.credentials.expiresAt !== null && now < stale.credentials.expiresAt * 1000) {
        stale.freshUntil = Math.min(now + STALE_RETRY_MS, stale.credentials.expiresAt * 1000);
        return stale.credentials;
      }
      throw error;
    }
    const credentials = new Credentials(connectionId, response);
    const now = this.#now();
    let freshUntil: number;
    if (credentials.expiresAt === null) {
      freshUntil = now + this.#maxCacheMs;
    } else {
      const expiresMs = credentials.expiresAt * 1000;
      freshUntil = expiresMs - Math.min(this.#marginMs, Math.max(0, (expiresMs - now) / 2));
    }
    // A fetch that an invalidation overtook (a forced refresh, a delete) is handed to its callers but not cached.
    if ((this.#generations.get(connectionId) ?? 0) === generation) {
      this.#cache.set(connectionId, { credentials, freshUntil });
    }
    return credentials;
  }

  /**
   * After a provider answered 401 to `stale`: credentials worth one retry, or undefined. Concurrent 401s of one
   * connection share one recovery; credentials that changed meanwhile are used without another refresh. OAuth
   * connections are refreshed (`POST /v1/refresh`); the others are fetched again, and retried only if they changed.
   */
  async #recover(connectionId: string, stale: Credentials, signal: AbortSignal | undefined): Promise<Credentials | undefined> {
    const cached = this.#cache.get(connectionId);
    if (cached !== undefined && !cached.credentials.sameAs(stale)) {
      return cached.credentials;
    }
    let recovery = this.#recovering.get(connectionId);
    if (recovery === undefined) {
      recovery = (async () => {
        if (stale.strategy.type === "oauth2") {
          try {
            await this.refresh(connectionId);
          } catch (error) {
            // No refresh token: the 401 stands. Anything else (attention_required…) is the caller's to see.
            if (error instanceof NexusError && error.code === "refresh_not_supported") {
              return undefined;
            }
            throw error;
          }
        } else {
          this.invalidate(connectionId);
        }
        const fresh = await this.getCredentials(connectionId);
        return fresh.sameAs(stale) ? undefined : fresh;
      })();
      this.#recovering.set(connectionId, recovery);
      const current = recovery;
      const clear = () => {
        if (this.#recovering.get(connectionId) === current) {
          this.#recovering.delete(connectionId);
        }
      };
      recovery.then(clear, clear);
    }
    return signal ? raceSignal(recovery, signal) : recovery;
  }

  // ---- The fetch hook ----

  /**
   * A `fetch` for one connection: each request gets the connection's current credentials (Bearer, API key,
   * Basic or a SigV4 signature), or goes through the Bridge with `{ bridge: true }`. When the provider answers
   * 401 and the body can be sent again, the credentials are refreshed once and the request retried once. Redirects
   * are followed with the credentials only to the request's own origin; through the Bridge, only those to the same
   * connection's Bridge on Nexus (a redirect inside the provider's API, which the Bridge rewrites to its own path).
   * Throws the typed errors of {@link getCredentials} (AttentionRequiredError…); the provider's own answers,
   * errors included, are returned as they are.
   */
  fetch(connectionId: string, options: ConnectionFetchOptions = {}): FetchLike {
    if (!connectionId) {
      throw new ConfigurationError("A connection id is required.");
    }
    return options.bridge
      ? (input, init) => this.#bridgeFetch(connectionId, input, init)
      : (input, init) => this.#directFetch(connectionId, input, init);
  }

  async #directFetch(connectionId: string, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const base = await normalize(input, init);
    const credentials = await this.getCredentials(connectionId, { signal: base.signal ?? undefined });
    const sent = await this.#sendWith(credentials, base);
    // A 401 from another host (a redirect's, which got no credentials) says nothing about them.
    if (sent.response.status !== 401 || !sent.credentialed || !isReplayable(base.body)) {
      return sent.response;
    }
    const fresh = await this.#recover(connectionId, credentials, base.signal ?? undefined);
    if (fresh === undefined) {
      return sent.response;
    }
    await sent.response.body?.cancel().catch(() => undefined);
    return (await this.#sendWith(fresh, base)).response;
  }

  /**
   * Sends `base` with `credentials`, following redirects itself when the caller lets fetch follow them (the
   * default): fetch would copy every header but Authorization, Cookie and Proxy-Authorization to another host, so an
   * API key header or `X-Amz-Security-Token` would reach whatever host the provider redirects to. Credentials are
   * applied (and SigV4 signed anew) only on a hop whose origin (scheme, host, port) is the request's own; a hop
   * elsewhere gets the caller's headers without them. At most 20 redirects are followed: a 21st to the request's
   * origin throws TypeError, as fetch; a 21st to another origin comes back as the 3xx, as Go's HTTPClient and .NET's
   * NexusCredentialHandler hand it back. `credentialed` tells whether the final hop carried them.
   */
  async #sendWith(credentials: Credentials, base: NormalizedRequest): Promise<{ response: Response; credentialed: boolean }> {
    const mode = base.init.redirect ?? "follow";
    const origin = new URL(base.url).origin;
    let hop = { method: base.method, url: new URL(base.url), headers: new Headers(base.headers), body: base.body };
    for (let redirects = 0; ; redirects++) {
      const request = { method: hop.method, url: new URL(hop.url), headers: new Headers(hop.headers), body: hop.body };
      const credentialed = request.url.origin === origin;
      if (credentialed) {
        await applyCredentials(credentials, request);
      }
      const response = await this.#fetch(request.url, {
        ...base.init, method: request.method, headers: request.headers, body: request.body ?? null, redirect: mode === "follow" ? "manual" : mode,
      });
      const next = mode === "follow" ? redirectTarget(response, request.url) : undefined;
      if (next === undefined) {
        return { response, credentialed };
      }
      // Where the redirect goes is asked before how many there were: Go's HTTPClient and .NET's handler hand every
      // redirect to another origin than the request's back, so a 21st one comes back as the 3xx there, not as an
      // error, and here too (one below the limit is followed without the credentials).
      if (redirects >= MAX_REDIRECTS && next.origin !== origin) {
        return { response, credentialed };
      }
      if (redirects >= MAX_REDIRECTS) {
        await response.body?.cancel().catch(() => undefined);
        throw new TypeError(`Too many redirects (more than ${MAX_REDIRECTS}).`);
      }
      const redirected = redirectedRequest(response.status, hop);
      if (redirected === undefined) {
        return { response, credentialed }; // a streamed body cannot be sent a second time: the caller gets the 3xx
      }
      if (next.origin !== request.url.origin) {
        for (const name of ["authorization", "cookie", "proxy-authorization"]) {
          redirected.headers.delete(name);
        }
      }
      await response.body?.cancel().catch(() => undefined);
      hop = { ...redirected, url: next };
    }
  }

  /**
   * Sends `base` through the Bridge. The Bridge never follows a provider's redirect: one inside the provider's API
   * comes back with its Location rewritten to the Bridge's own path (`/v1/bridge/{id}/…`), one on the provider's host
   * outside the API with the provider's absolute Location. When the caller lets fetch follow redirects (the default),
   * a hop is followed here only when its Location, resolved against the request's URL, is this connection's Bridge on
   * Nexus's own origin, and only then does it carry X-API-Key again; any other redirect comes back as the 3xx, so the
   * Nexus API key never reaches another host (fetch would copy X-API-Key there). "manual" hands every 3xx back;
   * "error" throws on one, as fetch does.
   */
  async #bridgeFetch(connectionId: string, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const base = await normalize(input, init, true);
    const prefix = `${this.baseUrl}/v1/bridge/${segment(connectionId)}`;
    const target = new URL(base.url);
    // A URL already on this connection's Bridge (a Location handed back with "manual") is sent as it is; any other's
    // path and query are relative to the provider's api_base_url.
    const url = onBridge(target, prefix) ? target : new URL(`${prefix}${target.pathname}${target.search}`);
    const mode = base.init.redirect ?? "follow";
    let hop = { method: base.method, url, headers: new Headers(base.headers), body: base.body };
    for (let redirects = 0; ; redirects++) {
      // Sent with "manual" whatever the mode, so that fetch rejects only when no answer came (which is retried):
      // "error" is applied here, as fetch would.
      const response = await this.#sendToBridge(connectionId, hop, base);
      if (mode === "error" && REDIRECT_STATUSES.has(response.status)) {
        await response.body?.cancel().catch(() => undefined);
        throw new TypeError("fetch failed: unexpected redirect (redirect: \"error\").");
      }
      const next = mode === "follow" ? redirectTarget(response, hop.url) : undefined;
      if (next === undefined || !onBridge(next, prefix)) {
        return response;
      }
      if (redirects >= MAX_REDIRECTS) {
        await response.body?.cancel().catch(() => undefined);
        throw new TypeError(`Too many redirects (more than ${MAX_REDIRECTS}).`);
      }
      const redirected = redirectedRequest(response.status, hop);
      if (redirected === undefined) {
        return response; // 307/308 with a streamed body, which cannot be sent a second time: the caller gets the 3xx
      }
      await response.body?.cancel().catch(() => undefined);
      hop = { ...redirected, url: next };
    }
  }

  /**
   * One request to the Bridge with X-API-Key (redirects not followed); Nexus's own problems become typed errors. When
   * the method is idempotent and the body can be sent again, Nexus's transient problems and a connection that failed
   * before any answer are retried (retryDelay); fetch's own error is thrown when no answer came in the end.
   */
  async #sendToBridge(connectionId: string, hop: { method: string; url: URL; headers: Headers; body: BodyInit | null | undefined }, base: NormalizedRequest): Promise<Response> {
    const idempotent = IDEMPOTENT.has(hop.method) && isReplayable(hop.body);
    const signal = base.signal ?? undefined;
    for (let attempt = 1; ; attempt++) {
      const headers = new Headers(hop.headers);
      headers.set("X-API-Key", this.#apiKey);
      let response: Response;
      // The client's timeout bounds each attempt until the answer's headers (as request() does for Nexus's API); the
      // body is then read at the caller's pace, the caller's own signal still aborting it.
      const timeout = withTimeout(signal, this.#timeoutMs);
      try {
        response = await this.#fetch(hop.url, { ...base.init, method: hop.method, headers, body: hop.body ?? null, redirect: "manual", signal: timeout.signal });
        timeout.stopTimer();
      } catch (caught) {
        timeout.dispose();
        if (timeout.timedOut() && !signal?.aborted) {
          // Nexus may be working on it: not sent again.
          throw new TimeoutError(`Nexus did not answer ${hop.method} ${hop.url.pathname} within ${this.#timeoutMs} ms.`, { cause: caught });
        }
        // No answer from Nexus (refused, reset, DNS): sent again as a transient problem is, unless the caller aborted.
        const delay = signal?.aborted ? undefined : this.#retryDelay(new NetworkError(`Nexus could not be reached for ${hop.method} ${hop.url.pathname}.`, { cause: caught }), attempt, idempotent);
        if (delay === undefined) {
          throw caught;
        }
        await sleep(delay, signal);
        continue;
      }
      const error = await nexusProblem(response, connectionId);
      if (error === undefined) {
        return response;
      }
      const delay = this.#retryDelay(error, attempt, idempotent);
      if (delay === undefined) {
        throw error;
      }
      await sleep(delay, signal);
    }
  }

  // ---- Calls to Nexus ----

  /**
   * One call to Nexus's API with the client's key (or `options.apiKey`), timeout and retry rules; answers that are
   * not 2xx become typed errors (a redirect is not followed: a RequestError with its status). The other methods are built on it; use it for routes they do not cover (admin).
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}, connectionId?: string): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) {
        url.searchParams.set(name, String(value));
      }
    }
    const headers: Record<string, string> = { "X-API-Key": options.apiKey ?? this.#apiKey, Accept: "application/json" };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const idempotent = options.idempotent ?? IDEMPOTENT.has(method);
    for (let attempt = 1; ; attempt++) {
      let error: NexusError;
      const signal = withTimeout(options.signal, this.#timeoutMs);
      try {
        // redirect "manual": fetch keeps X-API-Key on a redirect to another host, and the Bridge passes a provider's
        // redirect on with the provider's absolute Location; a 3xx from Nexus's API is a RequestError instead.
        const response = await this.#fetch(url, { method, headers, body: body ?? null, signal: signal.signal, redirect: "manual" });
        const text = await response.text();
        if (response.ok) {
          return (text.length === 0 ? undefined : JSON.parse(text)) as T;
        }
        if (method === "DELETE" && response.status === 404 && attempt > 1) {
          // A retried DELETE: the attempt whose answer was lost (a proxy's 502, a reset) deleted it, and gone is what
          // was asked.
          return undefined as T;
        }
        error = errorFromResponse(response.status, parseProblem(text), response.headers.get("Retry-After"), connectionId, text);
      } catch (caught) {
        if (options.signal?.aborted) {
          throw options.signal.reason;
        }
        if (signal.timedOut()) {
          throw new TimeoutError(`Nexus did not answer ${method} ${url.pathname} within ${this.#timeoutMs} ms.`);
        }
        if (caught instanceof SyntaxError) {
          throw new NexusError(`Nexus answered ${method} ${url.pathname} with a body that is not JSON.`, 0, "invalid_response");
        }
        error = new NetworkError(`Nexus could not be reached for ${method} ${url.pathname}.`, { cause: caught });
      } finally {
        signal.dispose();
      }
      const delay = this.#retryDelay(error, attempt, idempotent);
      if (delay === undefined) {
        throw error;
      }
      await sleep(delay, options.signal);
    }
  }

  #retryDelay(error: NexusError, attempt: number, idempotent: boolean): number | undefined {
    return retryDelay(error, attempt, idempotent, this.#retry, this.#random);
  }

  toString(): string {
    return `Nexus(${this.baseUrl})`;
  }

  toJSON(): Record<string, unknown> {
    return { baseUrl: this.baseUrl, apiKey: REDACTED };
  }

  [inspectSymbol](): string {
    return `Nexus { baseUrl: '${this.baseUrl}', apiKey: '${REDACTED}', cachedConnections: ${this.#cache.size} }`;
  }
}

/**
 * The codes of Nexus's 502/503/504 problems that a later attempt may not meet (docs/errors.md): the provider or AWS
 * STS unreachable, slow or throttling, the database unavailable, a refresh not possible yet. The others are refusals
 * that sending again does not change, and may repeat work (502 `token_request_failed`: each attempt starts another
 * client_credentials grant; `redirect_refused`; `aws_assume_role_failed`).
 */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set(["upstream_unreachable", "upstream_timeout", "database_unavailable", "refresh_unavailable", "aws_sts_throttled"]);

/** A 502/503/504 with this code is retried: no Nexus code at all ("", a proxy's answer) or a transient one. */
function isTransientCode(code: string): boolean {
  return code === "" || TRANSIENT_CODES.has(code);
}

/**
 * A 502/503/504 that is Nexus's refusal (a code not in TRANSIENT_CODES: `token_request_failed`, `redirect_refused`,
 * `aws_assume_role_failed`, …): the retry policy does not send it again, and waitUntilActive does not poll through it.
 */
function isRefusal(error: unknown): boolean {
  return error instanceof UnavailableError && !isTransientCode(error.code);
}

/**
 * The wait before attempt `attempt + 1`, or undefined when `error` must be thrown now: the retry policy's one
 * decision, for calls to Nexus's API and requests through the Bridge alike. Only transient errors (isRetryable: 429,
 * 502/503/504 without a Nexus code or with one of TRANSIENT_CODES, a connection that failed before any answer) of
 * idempotent requests are retried, up to `maxAttempts`;
 * exponential backoff with full jitter (a random wait up to base × 2^(attempt-1), capped), never sooner than
 * Retry-After (RFC 9110 §10.2.3), and not at all when Retry-After is longer than `maxRetryAfterMs`. A 500
 * (`internal_error`, a RequestError), a timeout, AttentionRequired and the other 4xx are never retried.
 * @internal
 */
export function retryDelay(error: NexusError, attempt: number, idempotent: boolean, retry: Required<RetryOptions>, random: () => number): number | undefined {
  if (!isRetryable(error) || !idempotent || attempt >= retry.maxAttempts || isRefusal(error)) {
    return undefined;
  }
  const cap = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
  const jittered = random() * cap;
  const retryAfter = error instanceof RateLimitedError || error instanceof UnavailableError ? error.retryAfter : undefined;
  if (retryAfter !== undefined) {
    const floor = retryAfter * 1000;
    if (floor > retry.maxRetryAfterMs) {
      return undefined;
    }
    return Math.max(floor, jittered);
  }
  return jittered;
}

interface RawConnection {
  connection_id: string;
  status: string;
  provider: string;
  workspace_id: string;
  scopes?: string[];
  created_at: number;
  updated_at: number;
  expires_at?: number | null;
  error?: string | null;
  error_description?: string | null;
  connection_config?: Record<string, string> | null;
  granted_scopes?: string[] | null;
  last_refreshed_at?: number | null;
  next_refresh_at?: number | null;
  consecutive_failures?: number | null;
  last_error?: { code?: string; message?: string } | null;
  reconnecting?: boolean;
}

function toConnection(raw: RawConnection): Connection {
  return {
    connectionId: raw.connection_id,
    status: raw.status,
    provider: raw.provider,
    workspaceId: raw.workspace_id,
    scopes: raw.scopes ?? [],
    createdAt: raw.created_at,
    updatedAt: raw.updated_at,
    expiresAt: raw.expires_at ?? null,
    error: raw.error ?? null,
    errorDescription: raw.error_description ?? null,
    connectionConfig: { ...(raw.connection_config ?? {}) },
    grantedScopes: raw.granted_scopes ?? null,
    lastRefreshedAt: raw.last_refreshed_at ?? null,
    nextRefreshAt: raw.next_refresh_at ?? null,
    consecutiveFailures: raw.consecutive_failures ?? 0,
    lastError: raw.last_error ? { code: raw.last_error.code ?? "", message: raw.last_error.message ?? "" } : null,
    reconnecting: raw.reconnecting === true,
  };
}

/**
 * The 201 of `POST /v1/request-connection` or the 200 of a reconnect: `{auth_url, connection_id}` for a consent,
 * `{connection_id, status}` without `auth_url` (Nexus leaves nulls out; a null is read the same) for a
 * machine-to-machine server. Only what the answer holds becomes a property.
 */
interface RawRequested {
  auth_url?: string | null;
  connection_id: string;
  status?: string | null;
}

function toRequested(raw: RawRequested): RequestConnectionResult {
  const result: RequestConnectionResult = raw.auth_url ? { authUrl: raw.auth_url, connectionId: raw.connection_id } : { connectionId: raw.connection_id };
  if (typeof raw.status === "string") {
    result.status = raw.status;
  }
  return result;
}

function segment(id: string): string {
  if (!id) {
    throw new ConfigurationError("A connection id is required.");
  }
  return encodeURIComponent(id);
}

function parseProblem(text: string): Problem | undefined {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Problem) : undefined;
  } catch {
    return undefined;
  }
}

/** A Bridge answer that is Nexus's own problem (its `type` is `urn:nexus:problem:…`), as a typed error. */
async function nexusProblem(response: Response, connectionId: string): Promise<NexusError | undefined> {
  if (response.ok || !(response.headers.get("content-type") ?? "").includes("application/problem+json")) {
    return undefined;
  }
  const text = await response.clone().text();
  const problem = parseProblem(text);
  if (!problem || typeof problem.type !== "string" || !problem.type.startsWith("urn:nexus:problem:")) {
    return undefined;
  }
  await response.body?.cancel().catch(() => undefined);
  return errorFromResponse(response.status, problem, response.headers.get("Retry-After"), connectionId, text);
}

/** Where a redirect answer points (its Location, resolved against the request's URL), or undefined. */
function redirectTarget(response: Response, from: URL): URL | undefined {
  const location = REDIRECT_STATUSES.has(response.status) ? response.headers.get("location") : null;
  if (location === null) {
    return undefined;
  }
  try {
    const next = new URL(location, from);
    return next.protocol === "http:" || next.protocol === "https:" ? next : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The next hop's method, headers and body after a redirect with `status`, as fetch makes them (Fetch standard,
 * HTTP-redirect fetch): 303 (but for GET and HEAD), and 301/302 after a POST, become a GET without a body or its
 * Content-* headers; otherwise the method and body are kept, or undefined when the body is a stream, which cannot be
 * sent a second time.
 */
function redirectedRequest(status: number, hop: { method: string; headers: Headers; body: BodyInit | null | undefined }):
  { method: string; headers: Headers; body: BodyInit | null | undefined } | undefined {
  const headers = new Headers(hop.headers);
  if ((status === 303 && hop.method !== "GET" && hop.method !== "HEAD") || ((status === 301 || status === 302) && hop.method === "POST")) {
    for (const name of ["content-encoding", "content-language", "content-location", "content-type", "content-length"]) {
      headers.delete(name);
    }
    return { method: "GET", headers, body: null };
  }
  return isReplayable(hop.body) ? { method: hop.method, headers, body: hop.body } : undefined;
}

/**
 * Whether `url` is on the Bridge `prefix` (`{Nexus}/v1/bridge/{id}`): Nexus's own scheme, host and port, and a path
 * that is the prefix or under it. The URL parser has already resolved dot segments (`%2e` ones too).
 */
function onBridge(url: URL, prefix: string): boolean {
  const bridge = new URL(prefix);
  return url.origin === bridge.origin && url.username === "" && url.password === ""
    && (url.pathname === bridge.pathname || url.pathname.startsWith(bridge.pathname + "/"));
}

interface NormalizedRequest {
  method: string;
  url: string;
  headers: Headers;
  body: BodyInit | null | undefined;
  signal: AbortSignal | null | undefined;
  /** The other fetch options (redirect, cache, duplex…), passed through. */
  init: RequestInit;
}

async function normalize(input: RequestInfo | URL, init: RequestInit | undefined, relative = false): Promise<NormalizedRequest> {
  if (typeof Request !== "undefined" && input instanceof Request) {
    const request = init ? new Request(input, init) : input;
    // A Request's body is a stream: read it once so that it can be signed and sent again.
    const body = request.body ? await request.arrayBuffer() : null;
    return {
      method: request.method.toUpperCase(),
      url: request.url,
      headers: new Headers(request.headers),
      body,
      signal: init?.signal ?? request.signal,
      init: { redirect: request.redirect, signal: init?.signal ?? request.signal },
    };
  }
  const text = input instanceof URL ? input.href : String(input);
  const url = relative && !/^[a-z][a-z0-9+.-]*:/i.test(text) ? new URL(text.startsWith("/") ? text : "/" + text, "http://bridge.invalid").href : text;
  return {
    method: (init?.method ?? "GET").toUpperCase(),
    url,
    headers: new Headers(init?.headers),
    body: init?.body,
    signal: init?.signal,
    init: { ...init },
  };
}

/**
 * The retry policy's classification (its one place; retryDelay adds the method and the attempts): Nexus's transient
 * answers, 429 (RateLimitedError) and 502/503/504 (UnavailableError, which is nothing else), and a connection that
 * failed before any answer (NetworkError). Not a 500 (`internal_error` is a bug in Nexus, not a passing state) nor
 * another 5xx, which are RequestErrors; not a timeout.
 */
function isRetryable(error: unknown): error is RateLimitedError | UnavailableError | NetworkError {
  return error instanceof RateLimitedError || error instanceof UnavailableError || error instanceof NetworkError;
}

/**
 * A failure that may be over by the next poll of waitUntilActive: what the retry policy retries (isRetryable), and a
 * request that timed out (Nexus slow, not answering wrongly). A 500 is not: it ends the wait at once; so does a
 * refusal (isRefusal), which the wait tests apart. Fetching credentials serves cached ones over any of these but
 * a refusal.
 */
function isTransient(error: unknown): error is RateLimitedError | UnavailableError | NetworkError | TimeoutError {
  return isRetryable(error) || error instanceof TimeoutError;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** The caller's signal combined with a timeout (without AbortSignal.any, which not every edge runtime has). */
function withTimeout(outer: AbortSignal | undefined, timeoutMs: number): { signal: AbortSignal; timedOut: () => boolean; stopTimer: () => void; dispose: () => void } {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new TimeoutError(`Nexus did not answer within ${timeoutMs} ms.`));
  }, timeoutMs);
  const onAbort = () => controller.abort(outer!.reason);
  if (outer?.aborted) {
    controller.abort(outer.reason);
  } else {
    outer?.addEventListener("abort", onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    /** Ends the timeout but keeps the outer signal's abort (an answer's body still being read). */
    stopTimer: () => clearTimeout(timer),
    dispose: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    },
  };
}
