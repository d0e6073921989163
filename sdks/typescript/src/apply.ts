import type { Credentials } from "./credentials.js";
import { EMPTY_PAYLOAD_HASH, UNSIGNED_HEADERS, UNSIGNED_PAYLOAD, sha256Hex, signV4Sync } from "./sigv4.js";

/** A request about to be sent with `fetch`: credentials are applied to its URL and headers in place. */
export interface OutgoingRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: BodyInit | null | undefined;
}

export interface ApplyOptions {
  /** The signing time for aws_sigv4 (default: now). */
  now?: Date;
  /** aws_sigv4: the body's hex SHA-256 or `UNSIGNED-PAYLOAD`, when the caller knows it (default: hashed from `body`). */
  payloadHash?: string;
}

/**
 * Applies credentials to a request, in place, by their strategy: `oauth2` → `Authorization: Bearer`; `api_key` →
 * the header or query parameter the strategy names, with its prefix; `basic_auth` → `Authorization: Basic`;
 * `aws_sigv4` → signed here (SigV4 with `x-amz-content-sha256`, and `X-Amz-Security-Token` for temporary
 * credentials). Returns the same request.
 */
export async function applyCredentials(credentials: Credentials, request: OutgoingRequest, options: ApplyOptions = {}): Promise<OutgoingRequest> {
  const strategy = credentials.strategy;
  switch (strategy.type) {
    case "oauth2":
      request.headers.set("Authorization", "Bearer " + required(credentials.accessToken, "access_token"));
      return request;
    case "api_key": {
      const value = (strategy.prefix ?? "") + required(credentials.apiKey, "api_key");
      const name = strategy.name || "Authorization";
      if (strategy.in === "query") {
        setQueryParameter(request.url, name, value);
      } else {
        request.headers.set(name, value);
      }
      return request;
    }
    case "basic_auth":
      request.headers.set("Authorization", credentials.basicAuthorization());
      return request;
    case "aws_sigv4":
      await signRequest(credentials, request, options);
      return request;
    default:
      throw new TypeError(`Unknown credential strategy '${strategy.type}'; use the Bridge for it.`);
  }
}

function required(value: string | undefined, field: string): string {
  if (value === undefined) {
    throw new TypeError(`The credentials have no '${field}' field.`);
  }
  return value;
}

/** Sets one query parameter (replacing any of that name), leaving the rest of the query exactly as written. */
function setQueryParameter(url: URL, name: string, value: string): void {
  const encodedName = encodeURIComponent(name);
  const kept = url.search.length > 1
    ? url.search.slice(1).split("&").filter((pair) => pair.length > 0 && safeDecode(pair.split("=")[0]!) !== name)
    : [];
  kept.push(`${encodedName}=${encodeURIComponent(value)}`);
  url.search = "?" + kept.join("&");
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

async function signRequest(credentials: Credentials, request: OutgoingRequest, options: ApplyOptions): Promise<void> {
  const aws = credentials.aws;
  const { region, service } = credentials.strategy;
  if (!aws || !region || !service) {
    throw new TypeError("aws_sigv4 credentials need access_key_id, secret_access_key, a region and a service.");
  }
  const payloadHash = options.payloadHash ?? (request.body == null ? EMPTY_PAYLOAD_HASH : await hashBody(request.body));
  // Values an earlier signing left (a retry) are neither signed nor sent twice.
  for (const name of ["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"]) {
    request.headers.delete(name);
  }
  const headers: Array<[string, string]> = [];
  request.headers.forEach((value, name) => {
    if (!UNSIGNED_HEADERS.has(name)) {
      headers.push([name, value]);
    }
  });
  const signed = signV4Sync({
    method: request.method,
    host: request.url.host,
    path: request.url.pathname,
    query: request.url.search,
    headers,
    payloadHash,
    region,
    service,
    credentials: aws,
    date: options.now ?? new Date(),
    addContentSha256Header: true,
  });
  for (const [name, value] of signed.addedHeaders) {
    request.headers.set(name, value);
  }
  request.headers.set("Authorization", signed.authorization);
}

/** The hex SHA-256 of a body fetch can send again; `UNSIGNED-PAYLOAD` for streams and form data. */
export async function hashBody(body: BodyInit | null | undefined): Promise<string> {
  if (body === null || body === undefined) {
    return EMPTY_PAYLOAD_HASH;
  }
  if (typeof body === "string") {
    return body.length === 0 ? EMPTY_PAYLOAD_HASH : sha256Hex(body);
  }
  if (body instanceof ArrayBuffer) {
    return sha256Hex(body);
  }
  if (ArrayBuffer.isView(body)) {
    return sha256Hex(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  }
  if (body instanceof URLSearchParams) {
    return sha256Hex(body.toString());
  }
  if (typeof Blob !== "undefined" && body instanceof Blob) {
    return sha256Hex(await body.arrayBuffer());
  }
  return UNSIGNED_PAYLOAD;
}

/** Whether fetch can send this body again (a retry after a 401): everything but a stream. */
export function isReplayable(body: BodyInit | null | undefined): boolean {
  return !(typeof ReadableStream !== "undefined" && body instanceof ReadableStream);
}
