/**
 * Nexus webhooks: verify a delivery's Standard Webhooks signature and read its event.
 *
 * ```ts
 * const event = await verifyWebhook(secret, request.headers, rawBody); // throws WebhookVerificationError
 * if (event.type === WebhookEventTypes.ConnectionRecovered) console.log(event.data.connection_id, event.data.failures);
 * ```
 */

/** The event types Nexus sends (others may be added: ignore those you do not know). */
export const WebhookEventTypes = Object.freeze({
  /** The user completed consent (`reason`: `connected`, `reconnected`), or a manual refresh brought it back (`refreshed`). */
  ConnectionActive: "connection.active",
  /** The provider rejected a refresh, or the token expired without a refresh token: ask the user to connect again. */
  ConnectionAttentionRequired: "connection.attention_required",
  /** The first transient refresh failure of a streak; Nexus keeps retrying. */
  ConnectionRefreshFailed: "connection.refresh_failed",
  /** A refresh succeeded after transient failures, once per streak (`failures`: how many there were). */
  ConnectionRecovered: "connection.recovered",
  /** The connection was deleted. */
  ConnectionRevoked: "connection.revoked",
  /** `POST /v1/admin/webhooks/{id}/test`. */
  WebhookTest: "webhook.test",
} as const);

export type WebhookEventType = (typeof WebhookEventTypes)[keyof typeof WebhookEventTypes];

/** The data of the `connection.*` events; which fields are set depends on the type. Times are Unix seconds. */
export interface ConnectionEventData {
  connection_id: string;
  provider: string;
  status: string;
  reason?: string;
  error?: string;
  error_description?: string;
  failures?: number;
  retry_at?: number | null;
  expires_at?: number | null;
  previous_status?: string;
  provider_revocation?: string;
}

/** A delivery's body. `id` is the same on every retry: de-duplicate on it. Nothing in it is a secret. */
export interface WebhookEvent {
  id: string;
  type: WebhookEventType | string;
  timestamp: number;
  workspace_id: string | null;
  data: ConnectionEventData & Record<string, unknown>;
}

/** The delivery is not signed with the secret, or its timestamp is too far from now (a possible replay). */
export class WebhookVerificationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WebhookVerificationError";
  }
}

export interface VerifyWebhookOptions {
  /** How far `webhook-timestamp` may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The current time in milliseconds (default `Date.now`). */
  now?: () => number;
}

type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? "";
  }
  for (const [key, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (key.toLowerCase() === name) {
      return Array.isArray(value) ? value.join(" ") : (value ?? "");
    }
  }
  return "";
}

function base64Bytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    out[i] = binary.charCodeAt(i);
  }
  return out;
}

/**
 * Checks `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, keyed with the
 * base64 part of `secret` after `whsec_`) with Web Crypto's constant-time verify, refuses a `webhook-timestamp` more
 * than 5 minutes from now, and returns the event. `body` is the raw request body (a string or its bytes). A secret
 * whose key is empty (`whsec_`, `""`) is refused; every failure, Web Crypto's included, is a WebhookVerificationError.
 */
export async function verifyWebhook(secret: string, headers: HeaderSource, body: string | Uint8Array, options: VerifyWebhookOptions = {}): Promise<WebhookEvent> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("webhook-id, webhook-timestamp or webhook-signature missing");
  }
  const sent = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || !Number.isSafeInteger(sent)) {
    throw new WebhookVerificationError("webhook-timestamp is not a number");
  }
  const now = (options.now ?? Date.now)() / 1000;
  if (Math.abs(now - sent) > (options.toleranceSeconds ?? 300)) {
    throw new WebhookVerificationError("webhook-timestamp is too far from now");
  }
  let key: Uint8Array<ArrayBuffer>;
  try {
    key = base64Bytes(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
  } catch {
    throw new WebhookVerificationError("the secret is not a whsec_ secret");
  }
  if (key.length === 0) {
    // Anyone can compute an HMAC with an empty key: "whsec_" (or "") is no secret, as in the other SDKs.
    throw new WebhookVerificationError("the secret is not a whsec_ secret");
  }
  const bodyBytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + bodyBytes.length);
  signed.set(prefix, 0);
  signed.set(bodyBytes, prefix.length);
  let valid = false;
  try {
    const cryptoKey = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    for (const candidate of signatures.split(" ")) {
      if (!candidate.startsWith("v1,")) {
        continue;
      }
      let mac: Uint8Array<ArrayBuffer>;
      try {
        mac = base64Bytes(candidate.slice(3));
      } catch {
        continue;
      }
      if (await crypto.subtle.verify("HMAC", cryptoKey, mac, signed)) {
        valid = true;
      }
    }
  } catch (caught) {
    // Web Crypto's own refusal (a DOMException: a key it cannot import, no HMAC in this runtime) is this error too;
    // anything else (no Web Crypto at all, a bug) is thrown as it is, not taken for a bad delivery.
    if (typeof DOMException !== "undefined" && caught instanceof DOMException) {
      throw new WebhookVerificationError("the signature could not be checked", { cause: caught });
    }
    throw caught;
  }
  if (!valid) {
    throw new WebhookVerificationError("signature not valid");
  }
  return parseWebhookEvent(new TextDecoder().decode(bodyBytes));
}

/** Reads a delivery's body without checking its signature: use `verifyWebhook` on requests. */
export function parseWebhookEvent(body: string): WebhookEvent {
  const value = JSON.parse(body) as Partial<WebhookEvent> | null;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new WebhookVerificationError("a webhook event is a JSON object");
  }
  return {
    id: String(value.id ?? ""),
    type: String(value.type ?? ""),
    timestamp: Number(value.timestamp ?? 0),
    workspace_id: value.workspace_id ?? null,
    data: (value.data && typeof value.data === "object" ? value.data : {}) as WebhookEvent["data"],
  };
}
