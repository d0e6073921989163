import type { AwsCredentials } from "./sigv4.js";

/** How to apply a connection's credentials, as `GET /v1/token/{id}` describes it in `strategy`. */
export interface Strategy {
  /** `oauth2`, `api_key`, `basic_auth` or `aws_sigv4`. */
  readonly type: string;
  /** api_key: `header` or `query`. */
  readonly in?: string | undefined;
  /** api_key: the header or query parameter name. */
  readonly name?: string | undefined;
  /** api_key: written before the key (`Bearer `, `token `…). */
  readonly prefix?: string | undefined;
  /** aws_sigv4: the signing region. */
  readonly region?: string | undefined;
  /** aws_sigv4: the signing service name. */
  readonly service?: string | undefined;
  /** aws_sigv4 with a role: the role the temporary credentials are for. */
  readonly roleArn?: string | undefined;
}

/** The JSON of `GET /v1/token/{id}`. */
export interface TokenResponse {
  strategy: { type: string; in?: string; name?: string; prefix?: string | null; region?: string; service?: string; role_arn?: string };
  credentials: Record<string, unknown>;
  expires_at?: number | null;
  connection_config?: Record<string, string> | null;
}

const inspectSymbol = Symbol.for("nodejs.util.inspect.custom");
export const REDACTED = "[redacted]";

/** AWS keys whose secret parts never show in `util.inspect`, `JSON.stringify` or `String()`. */
class AwsKeys implements AwsCredentials {
  readonly #accessKeyId: string;
  readonly #secretAccessKey: string;
  readonly #sessionToken: string | undefined;

  constructor(accessKeyId: string, secretAccessKey: string, sessionToken: string | undefined) {
    this.#accessKeyId = accessKeyId;
    this.#secretAccessKey = secretAccessKey;
    this.#sessionToken = sessionToken;
  }

  get accessKeyId(): string { return this.#accessKeyId; }
  get secretAccessKey(): string { return this.#secretAccessKey; }
  get sessionToken(): string | undefined { return this.#sessionToken; }

  toJSON(): Record<string, string> { return { accessKeyId: REDACTED, secretAccessKey: REDACTED }; }
  toString(): string { return "AwsCredentials([redacted])"; }
  [inspectSymbol](): string { return this.toString(); }
}

/**
 * A connection's credentials and how to apply them. The secret values are readable through the getters
 * (`accessToken`, `apiKey`…) but never appear in `util.inspect`, `console.log`, `JSON.stringify` or `String()`.
 */
export class Credentials {
  /** The connection these credentials belong to. */
  readonly connectionId: string;
  readonly strategy: Strategy;
  /** When they expire (Unix seconds), or `null` when they do not. */
  readonly expiresAt: number | null;
  /** The connection's per-connection values (`{ shop: "acme" }`), empty when its provider has none. Not secrets. */
  readonly connectionConfig: Readonly<Record<string, string>>;
  readonly #values: ReadonlyMap<string, string>;
  #aws: AwsKeys | undefined;
  #basic: string | undefined;

  constructor(connectionId: string, response: TokenResponse) {
    this.connectionId = connectionId;
    const s = response.strategy ?? { type: "oauth2" };
    this.strategy = Object.freeze({
      type: String(s.type),
      in: s.in ?? undefined,
      name: s.name ?? undefined,
      prefix: s.prefix ?? undefined,
      region: s.region ?? undefined,
      service: s.service ?? undefined,
      roleArn: s.role_arn ?? undefined,
    });
    const values = new Map<string, string>();
    for (const [key, value] of Object.entries(response.credentials ?? {})) {
      if (typeof value === "string") {
        values.set(key, value);
      }
    }
    this.#values = values;
    const credentialExpiry = response.credentials?.["expires_at"];
    const expiry = response.expires_at ?? (typeof credentialExpiry === "number" ? credentialExpiry : null);
    this.expiresAt = typeof expiry === "number" ? expiry : null;
    this.connectionConfig = Object.freeze({ ...(response.connection_config ?? {}) });
    Object.freeze(this);
  }

  /** oauth2: the access token. */
  get accessToken(): string | undefined { return this.#values.get("access_token"); }
  /** api_key: the key (without its prefix). */
  get apiKey(): string | undefined { return this.#values.get("api_key"); }
  /** basic_auth: the user name. */
  get username(): string | undefined { return this.#values.get("username"); }
  /** basic_auth: the password. */
  get password(): string | undefined { return this.#values.get("password"); }

  /** aws_sigv4: the keys (with the session token of temporary credentials). */
  get aws(): AwsCredentials | undefined {
    if (this.#aws === undefined && this.#values.has("access_key_id")) {
      this.#aws = new AwsKeys(this.#values.get("access_key_id")!, this.#values.get("secret_access_key") ?? "", this.#values.get("session_token") || undefined);
    }
    return this.#aws;
  }

  /** Any credential field by name (`access_token`, `api_key`, `access_key_id`, or a custom schema's field). */
  value(field: string): string | undefined {
    return this.#values.get(field);
  }

  /** The names of the credential fields present. */
  fields(): string[] {
    return [...this.#values.keys()];
  }

  /** The `Authorization: Basic …` value for basic_auth (UTF-8, RFC 7617). */
  basicAuthorization(): string {
    if (this.#basic === undefined) {
      this.#basic = "Basic " + base64(new TextEncoder().encode(`${this.username ?? ""}:${this.password ?? ""}`));
    }
    return this.#basic;
  }

  /** Whether `other` holds exactly the same secret values. */
  sameAs(other: Credentials): boolean {
    if (other.#values.size !== this.#values.size || other.strategy.type !== this.strategy.type) {
      return false;
    }
    for (const [key, value] of this.#values) {
      if (other.#values.get(key) !== value) {
        return false;
      }
    }
    return true;
  }

  toJSON(): Record<string, unknown> {
    return { connectionId: this.connectionId, strategy: this.strategy, expiresAt: this.expiresAt, credentials: REDACTED };
  }

  toString(): string {
    return `Credentials(${this.connectionId}, ${this.strategy.type}, ${REDACTED})`;
  }

  [inspectSymbol](): string {
    return `Credentials { connectionId: '${this.connectionId}', strategy: '${this.strategy.type}', expiresAt: ${this.expiresAt}, fields: [${this.fields().map((f) => `'${f}'`).join(", ")}], values: ${REDACTED} }`;
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 with padding (no `btoa`, which takes Latin-1 strings). */
export function base64(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + B64[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + "==";
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + "=";
  }
  return out;
}
