/**
 * AWS Signature Version 4 (`AWS4-HMAC-SHA256` in the `Authorization` header), as specified in the AWS
 * documentation "Create a signed AWS API request". Hashing is synchronous, in plain TypeScript (./sha256.ts), so it
 * runs on Node 20+ and edge runtimes alike and a signature costs microseconds, not Web Crypto round trips; only bodies
 * over 64 KiB are hashed with Web Crypto when there is one. Verified against every case of the AWS SigV4 test suite
 * (test/sigv4.test.ts).
 */

import { HmacSha256, sha256 } from "./sha256.js";

/** AWS credentials. `sessionToken` is sent as `X-Amz-Security-Token` (and signed) when present. */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

export interface SigV4Request {
  /** The HTTP method as sent, e.g. `GET`. */
  method: string;
  /** The `Host` header value (with the port when it is not the scheme's default); used when `headers` has none. */
  host: string;
  /** The path as sent on the wire (already percent-encoded, as `URL.pathname` gives it). */
  path: string;
  /** The query as sent, with or without its leading `?` (`URL.search`). */
  query: string;
  /** The headers to sign, in the order they are sent; a name may repeat. */
  headers: Iterable<readonly [string, string]>;
  /** The hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`. */
  payloadHash: string;
  region: string;
  service: string;
  credentials: AwsCredentials;
  /** The signing time. */
  date: Date;
  /** Remove dot segments and empty segments from the path. Default: every service but S3. */
  normalizePath?: boolean;
  /** Encode the (already encoded) path once more. Default: every service but S3. */
  doubleEncodePath?: boolean;
  /** Add and sign `x-amz-content-sha256`. Default: S3 only. */
  addContentSha256Header?: boolean;
}

/**
 * What signing produced. `canonicalRequest` and `addedHeaders` hold the session token of temporary credentials
 * (`x-amz-security-token`): `util.inspect` (and so `console.log`) and `String()` show only `signedHeaders` and
 * `signature`; `JSON.stringify` leaves out the canonical request and shows the token's header as `[redacted]`.
 */
export interface SigV4Result {
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
  signedHeaders: string;
  /** The value of the `Authorization` header. */
  authorization: string;
  /** The headers the signer owns, to send with the request: `X-Amz-Date`, and `X-Amz-Security-Token` and `x-amz-content-sha256` when it adds them. */
  addedHeaders: Array<[string, string]>;
}

const inspectSymbol = Symbol.for("nodejs.util.inspect.custom");

/** A SigV4Result whose text forms leave out the canonical request and the added headers (the session token). */
class SignedV4 implements SigV4Result {
  // Not own enumerable properties: a spread (`{...signed}`), Object.entries or a logger that walks an object's own
  // fields does not reach the session token either.
  readonly #canonicalRequest: string;
  readonly #addedHeaders: Array<[string, string]>;

  constructor(
    canonicalRequest: string,
    readonly stringToSign: string,
    readonly signature: string,
    readonly signedHeaders: string,
    readonly authorization: string,
    addedHeaders: Array<[string, string]>,
  ) {
    this.#canonicalRequest = canonicalRequest;
    this.#addedHeaders = addedHeaders;
  }

  get canonicalRequest(): string {
    return this.#canonicalRequest;
  }

  get addedHeaders(): Array<[string, string]> {
    return this.#addedHeaders;
  }

  /** Everything a request sent elsewhere needs, but the canonical request and the session token's value. */
  toJSON(): Record<string, unknown> {
    return {
      authorization: this.authorization,
      stringToSign: this.stringToSign,
      signedHeaders: this.signedHeaders,
      signature: this.signature,
      addedHeaders: this.addedHeaders.map(([name, value]) => [name, name.toLowerCase() === "x-amz-security-token" ? "[redacted]" : value]),
    };
  }

  toString(): string {
    return `SigV4Result(${this.signedHeaders}, ${this.signature})`;
  }

  [inspectSymbol](): string {
    return `SigV4Result { signedHeaders: '${this.signedHeaders}', signature: '${this.signature}' }`;
  }
}

export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
export const EMPTY_PAYLOAD_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ALGORITHM = "AWS4-HMAC-SHA256";
const TERMINATOR = "aws4_request";

const encoder = new TextEncoder();
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const UPPER_HEX: string[] = Array.from({ length: 256 }, (_, i) => "%" + i.toString(16).toUpperCase().padStart(2, "0"));

/** Header names that are never signed when a request is signed from a Headers object: the HTTP stack or a proxy may change them. */
export const UNSIGNED_HEADERS: ReadonlySet<string> = new Set([
  "authorization", "connection", "content-length", "expect", "keep-alive", "proxy-authorization",
  "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
]);

function subtle(): SubtleCrypto | undefined {
  return (globalThis as { crypto?: Crypto }).crypto?.subtle;
}

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (let i = 0; i < view.length; i++) {
    out += HEX[view[i]!];
  }
  return out;
}

/** Bodies up to this size are hashed on the calling thread; larger ones with Web Crypto, off the event loop, when it exists. */
const SYNC_HASH_LIMIT = 64 * 1024;

/** The hex SHA-256 of a string (UTF-8) or bytes. */
export async function sha256Hex(data: string | Uint8Array | ArrayBuffer): Promise<string> {
  const bytes = typeof data === "string" ? (data.length * 3 <= SYNC_HASH_LIMIT ? data : encoder.encode(data)) : data instanceof Uint8Array ? data : new Uint8Array(data);
  const size = typeof bytes === "string" ? bytes.length : bytes.byteLength;
  const webCrypto = size > SYNC_HASH_LIMIT ? subtle() : undefined;
  if (webCrypto && typeof bytes !== "string") {
    return toHex(await webCrypto.digest("SHA-256", bytes as BufferSource));
  }
  return toHex(sha256(bytes));
}

/**
 * Signing keys depend only on the secret, the day, the region and the service, so they are derived once per day
 * and kept (as an HMAC whose pads are already hashed) per credentials object: a signature then costs one SHA-256
 * and one HMAC.
 */
const signingKeys = new WeakMap<AwsCredentials, { scope: string; key: HmacSha256 }>();

function signingKey(credentials: AwsCredentials, dateStamp: string, region: string, service: string): HmacSha256 {
  const scope = `${dateStamp}/${region}/${service}`;
  const cached = signingKeys.get(credentials);
  if (cached && cached.scope === scope) {
    return cached.key;
  }
  const key = deriveSigningKey(credentials.secretAccessKey, dateStamp, region, service);
  signingKeys.set(credentials, { scope, key });
  return key;
}

function deriveSigningKey(secret: string, dateStamp: string, region: string, service: string): HmacSha256 {
  // kSecret = "AWS4" + secret; kDate = HMAC(kSecret, date); kRegion; kService; kSigning = HMAC(kService, "aws4_request").
  let key = new HmacSha256("AWS4" + secret).mac(dateStamp);
  for (const part of [region, service, TERMINATOR]) {
    const next = new HmacSha256(key).mac(part);
    key.fill(0);
    key = next;
  }
  const signing = new HmacSha256(key);
  key.fill(0);
  return signing;
}

/**
 * The services signed the S3 way (path as sent, `x-amz-content-sha256` added): the same list as Nexus's own signer
 * (`SigV4Signer.IsS3`), so that a request signed here and one the Bridge signs agree for every S3 variant.
 */
const S3_SERVICES: ReadonlySet<string> = new Set(["s3", "s3-outposts", "s3-object-lambda", "s3express"]);

function isS3(service: string): boolean {
  return S3_SERVICES.has(service);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Signs a request described by its parts; returns the signature and the headers to add. */
export async function signV4(request: SigV4Request): Promise<SigV4Result> {
  return signV4Sync(request);
}

/** `signV4`, synchronously. @internal */
export function signV4Sync(request: SigV4Request): SigV4Result {
  const { method, region, service, credentials } = request;
  if (!TOKEN.test(method)) {
    throw new TypeError("The HTTP method is not a valid token.");
  }
  for (const part of [region, service]) {
    if (!part || /[\s/]/.test(part)) {
      throw new TypeError("A region or service name must be non-empty, without '/' or spaces.");
    }
  }
  if (!credentials.accessKeyId || !credentials.secretAccessKey) {
    throw new TypeError("The access key id and the secret access key must not be empty.");
  }
  const payloadHash = normalizePayloadHash(request.payloadHash);
  const s3 = isS3(service);
  const normalizePath = request.normalizePath ?? !s3;
  const doubleEncode = request.doubleEncodePath ?? !s3;
  const addContentSha256 = request.addContentSha256Header ?? s3;
  const token = credentials.sessionToken || undefined;

  const amzDate = formatAmzDate(request.date);
  const dateStamp = amzDate.slice(0, 8);
  const added: Array<[string, string]> = [["X-Amz-Date", amzDate]];
  if (token) {
    added.push(["X-Amz-Security-Token", token]);
  }
  if (addContentSha256) {
    added.push(["x-amz-content-sha256", payloadHash]);
  }

  // Lowercase names; the caller's order kept for repeated names (a stable sort by name).
  const entries: Array<[string, string]> = [];
  let hasHost = false;
  for (const [rawName, value] of request.headers) {
    if (!TOKEN.test(rawName)) {
      throw new TypeError(`'${rawName}' is not a valid header name.`);
    }
    const name = rawName.toLowerCase();
    if (name === "authorization" || name === "x-amz-date" || (token && name === "x-amz-security-token") || (addContentSha256 && name === "x-amz-content-sha256")) {
      continue;
    }
    hasHost ||= name === "host";
    entries.push([name, value]);
  }
  if (!hasHost) {
    entries.push(["host", request.host]);
  }
  for (const [name, value] of added) {
    entries.push([name.toLowerCase(), value]);
  }
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

  let canonicalHeaders = "";
  let signedHeaders = "";
  for (let i = 0; i < entries.length; i++) {
    const [name, value] = entries[i]!;
    if (i > 0 && entries[i - 1]![0] === name) {
      canonicalHeaders += "," + trimValue(value, name);
    } else {
      if (i > 0) {
        canonicalHeaders += "\n";
        signedHeaders += ";";
      }
      canonicalHeaders += name + ":" + trimValue(value, name);
      signedHeaders += name;
    }
  }

  const canonicalRequest = `${method}\n${canonicalUri(request.path, normalizePath, doubleEncode)}\n${canonicalQuery(request.query)}\n${canonicalHeaders}\n\n${signedHeaders}\n${payloadHash}`;
  const scope = `${dateStamp}/${region}/${service}/${TERMINATOR}`;
  const stringToSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${toHex(sha256(canonicalRequest))}`;
  const signature = toHex(signingKey(credentials, dateStamp, region, service).mac(stringToSign));
  const authorization = `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return new SignedV4(canonicalRequest, stringToSign, signature, signedHeaders, authorization, added);
}

function formatAmzDate(date: Date): string {
  // 2015-08-30T12:36:00.000Z → 20150830T123600Z
  const iso = date.toISOString();
  return iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 13) + iso.slice(14, 16) + iso.slice(17, 19) + "Z";
}

function normalizePayloadHash(hash: string): string {
  if (hash === UNSIGNED_PAYLOAD) {
    return hash;
  }
  if (!/^[0-9a-fA-F]{64}$/.test(hash)) {
    throw new TypeError(`The payload hash must be a hex SHA-256 or '${UNSIGNED_PAYLOAD}'.`);
  }
  return hash.toLowerCase();
}

/** A header value trimmed, each run of spaces or tabs collapsed to one space. */
function trimValue(value: string, name: string): string {
  if (/[\r\n\0]/.test(value)) {
    throw new TypeError(`The value of header '${name}' contains a line break or NUL.`);
  }
  return value.replace(/^[ \t]+|[ \t]+$/g, "").replace(/[ \t]+/g, " ");
}

/** The canonical URI: dot and empty segments removed (not for S3), then URI-encoded once more (not for S3). */
export function canonicalUri(wirePath: string, normalize: boolean, doubleEncode: boolean): string {
  let path = normalize ? removeDotSegments(wirePath) : wirePath;
  if (path.length === 0) {
    return "/";
  }
  return doubleEncode ? uriEncode(path, false, true) : path;
}

/** Removes `.`, `..` and empty segments (RFC 3986 §5.2.4, plus AWS's collapsing of duplicate slashes). */
export function removeDotSegments(path: string): string {
  if (path.length === 0) {
    return "/";
  }
  const segments: string[] = [];
  let trailingSlash = false;
  for (const segment of path.split("/")) {
    trailingSlash = segment === "" || segment === "." || segment === "..";
    if (segment === "..") {
      segments.pop();
    } else if (!trailingSlash) {
      segments.push(segment);
    }
  }
  if (segments.length === 0) {
    return "/";
  }
  return "/" + segments.join("/") + (trailingSlash ? "/" : "");
}

/** The canonical query: each name and value decoded and strictly re-encoded, sorted by name then value. */
export function canonicalQuery(wireQuery: string): string {
  const query = wireQuery.startsWith("?") ? wireQuery.slice(1) : wireQuery;
  if (query.length === 0) {
    return "";
  }
  const pairs: Array<[string, string]> = [];
  for (const pair of query.split("&")) {
    if (pair.length === 0) {
      continue;
    }
    const eq = pair.indexOf("=");
    const name = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? "" : pair.slice(eq + 1);
    pairs.push([uriEncode(name, true, false), uriEncode(value, true, false)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join("&");
}

function isUnreserved(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
}

function hexValue(b: number): number {
  return b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x61 + 10;
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x66));
}

/**
 * Percent-encodes the UTF-8 bytes of `text`, leaving only RFC 3986 unreserved characters as they are (uppercase
 * hex). `decodePercent` decodes `%XX` first (query parts as sent); `keepSlash` leaves `/` (path separators).
 */
export function uriEncode(text: string, decodePercent: boolean, keepSlash: boolean): string {
  // Fast path: nothing to encode.
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!(isUnreserved(c) || (keepSlash && c === 0x2f))) {
      plain = false;
      break;
    }
  }
  if (plain) {
    return text;
  }
  const bytes = encoder.encode(text);
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i]!;
    if (b === 0x2f && keepSlash) {
      out += "/";
      continue;
    }
    if (decodePercent && b === 0x25 && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      b = (hexValue(bytes[i + 1]!) << 4) | hexValue(bytes[i + 2]!);
      i += 2;
    }
    out += isUnreserved(b) ? String.fromCharCode(b) : UPPER_HEX[b];
  }
  return out;
}
