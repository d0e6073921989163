// Issue 17 in the SDK: the health fields, the page iterator, reconnect, connection_config on credentials, and the
// webhook verification against the test vector shared by every Nexus SDK.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Nexus, WebhookEventTypes, WebhookVerificationError, verifyWebhook } from "../src/index.js";
import { TestServer, bearerToken, connection, json } from "./server.js";

const KEY = "nxk_test_api_key_SECRET";
let server: TestServer;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
});

const client = () => new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { baseDelayMs: 1, maxDelayMs: 5 } });
const healthy = (id: string) =>
  connection(id, "active", {
    connection_config: { shop: "acme" }, granted_scopes: ["read"], last_refreshed_at: 100, next_refresh_at: 200, consecutive_failures: 2,
    last_error: { code: "temporarily_unavailable", message: "Down for maintenance" }, reconnecting: true,
  });

test("the connections iterator follows next_cursor with the same filters and reads the health fields", async () => {
  const queries: string[] = [];
  server.on("GET", /^\/v1\/connections$/, (req, res) => {
    queries.push(req.url.split("?")[1] ?? "");
    if (req.url.includes("cursor=c2")) json(res, 200, { connections: [healthy("conn_1")] });
    else json(res, 200, { connections: [healthy("conn_3"), healthy("conn_2")], next_cursor: "c2" });
  });
  const seen = [];
  for await (const c of client().connections({ workspaceId: "w", status: "active", provider: "shop", limit: 2 })) seen.push(c);
  assert.deepEqual(seen.map((c) => c.connectionId), ["conn_3", "conn_2", "conn_1"]);
  assert.deepEqual(queries, ["workspace_id=w&status=active&provider=shop&limit=2", "workspace_id=w&status=active&provider=shop&limit=2&cursor=c2"]);
  const c = seen[0]!;
  assert.deepEqual(
    [c.connectionConfig, c.grantedScopes, c.lastRefreshedAt, c.nextRefreshAt, c.consecutiveFailures, c.lastError, c.reconnecting],
    [{ shop: "acme" }, ["read"], 100, 200, 2, { code: "temporarily_unavailable", message: "Down for maintenance" }, true],
  );
});

test("reconnect posts the scopes and keeps the connection id", async () => {
  let body = "";
  server.on("POST", /^\/v1\/connections\/conn_r\/reconnect$/, (req, res) => {
    body = req.body.toString();
    json(res, 200, { auth_url: "https://p.example/authorize?state=s", connection_id: "conn_r" });
  });
  const again = await client().reconnect("conn_r", { scopes: ["read"] });
  assert.equal(again.connectionId, "conn_r");
  assert.deepEqual(JSON.parse(body), { scopes: ["read"] });
});

test("credentials carry the connection's per-connection values", async () => {
  server.on("GET", /^\/v1\/token\/conn_cfg$/, (_req, res) => json(res, 200, { ...bearerToken("at", null), connection_config: { shop: "acme" } }));
  assert.deepEqual((await client().getCredentials("conn_cfg")).connectionConfig, { shop: "acme" });
});

// The shared vector: a connection.recovered delivery signed as Standard Webhooks specifies.
const SECRET = "whsec_bmV4dXMtc2RrLXdlYmhvb2stdGVzdC1rZXktMzJieXQ=";
const HEADERS = { "webhook-id": "msg_01JEXAMPLERECOVERED00000", "webhook-timestamp": "1764936000", "webhook-signature": "v1,kBeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY=" };
const BODY =
  '{"id":"msg_01JEXAMPLERECOVERED00000","type":"connection.recovered","timestamp":1764936000,"workspace_id":"user_abc123","data":{"connection_id":"conn_01JEXAMPLE","provider":"google","status":"active","failures":3,"expires_at":1764939600}}';
const at = (seconds: number) => ({ now: () => seconds * 1000 });

test("a recovered delivery is verified and parsed into its event type", async () => {
  const headers = new Headers({ ...HEADERS, "webhook-signature": `v1,c29tZXRoaW5nIGVsc2U= ${HEADERS["webhook-signature"]}` });
  const event = await verifyWebhook(SECRET, headers, BODY, at(1764936030));
  assert.equal(event.type, WebhookEventTypes.ConnectionRecovered);
  assert.deepEqual([event.id, event.workspace_id, event.timestamp], ["msg_01JEXAMPLERECOVERED00000", "user_abc123", 1764936000]);
  assert.deepEqual([event.data.connection_id, event.data.failures, event.data.expires_at], ["conn_01JEXAMPLE", 3, 1764939600]);
});

test("a secret whose key is empty is refused with WebhookVerificationError, even with the signature that key makes", async () => {
  // Anyone can compute an HMAC with an empty key, so such a "secret" verifies nothing (as in Go, Python, .NET).
  const mac = createHmac("sha256", Buffer.alloc(0)).update(`${HEADERS["webhook-id"]}.${HEADERS["webhook-timestamp"]}.${BODY}`).digest("base64");
  const headers = { ...HEADERS, "webhook-signature": `v1,${mac}` };
  for (const secret of ["whsec_", ""]) {
    await assert.rejects(verifyWebhook(secret, headers, BODY, at(1764936000)), WebhookVerificationError, JSON.stringify(secret));
  }
  // Web Crypto's own refusal (a DOMException) comes out as WebhookVerificationError too, with it as the cause.
  const subtle = crypto.subtle;
  const importKey = subtle.importKey;
  subtle.importKey = () => Promise.reject(new DOMException("Zero-length key is not supported", "DataError"));
  try {
    await assert.rejects(verifyWebhook(SECRET, HEADERS, BODY, at(1764936000)),
      (e: unknown) => e instanceof WebhookVerificationError && e.cause instanceof DOMException);
  } finally {
    subtle.importKey = importKey;
  }
});

test("a wrong signature, a tampered body, an old timestamp or another secret is refused", async () => {
  const cases: Array<[string, string, Record<string, string>, string, number]> = [
    ["wrong signature", SECRET, { ...HEADERS, "webhook-signature": "v1,kCeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY=" }, BODY, 1764936000],
    ["tampered body", SECRET, HEADERS, BODY.replace('"failures":3', '"failures":4'), 1764936000],
    ["replayed later", SECRET, HEADERS, BODY, 1764936000 + 360],
    ["other secret", "whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC0xMjM0NTY=", HEADERS, BODY, 1764936000],
    ["no headers", SECRET, {}, BODY, 1764936000],
  ];
  for (const [name, secret, headers, body, now] of cases) {
    await assert.rejects(verifyWebhook(secret, headers, body, at(now)), WebhookVerificationError, name);
  }
});
