// nexus.fetch(connectionId): every strategy applied to what the provider receives, the single retry after a
// provider 401, and the Bridge. One loopback server plays both Nexus and the provider.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { AttentionRequiredError, Nexus, NotFoundError, signV4 } from "../src/index.js";
import { TestServer, bearerToken, connection, deferred, json, notActive, problem, type Received } from "./server.js";

const KEY = "nxk_fetch_test_key";
let server: TestServer;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
});

let counter = 0;
const newId = () => `conn_f${++counter}_${Math.random().toString(36).slice(2, 8)}`;
const client = () => new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { baseDelayMs: 1 } });

function serveToken(id: string, body: unknown) {
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, body));
}

/** The provider: records what arrived, answers 200 with the path. */
function provider(id: string): Received[] {
  const seen: Received[] = [];
  server.on("GET", new RegExp(`^/api/${id}/`), (req, res) => {
    seen.push(req);
    json(res, 200, { ok: true });
  });
  server.on("POST", new RegExp(`^/api/${id}/`), (req, res) => {
    seen.push(req);
    json(res, 200, { ok: true });
  });
  return seen;
}

test("oauth2: the provider receives Authorization: Bearer and the caller's own headers", async () => {
  const id = newId();
  serveToken(id, bearerToken("access-1", null));
  const seen = provider(id);
  const call = client().fetch(id);
  const response = await call(`${server.url}/api/${id}/me`, { headers: { Accept: "application/json" } });
  assert.equal(response.status, 200);
  assert.equal(seen[0]!.headers["authorization"], "Bearer access-1");
  assert.equal(seen[0]!.headers["accept"], "application/json");
  assert.equal(seen[0]!.headers["x-api-key"], undefined);
});

test("api_key in a header, with its prefix", async () => {
  const id = newId();
  serveToken(id, { strategy: { type: "api_key", in: "header", name: "X-Acme-Key", prefix: "Token " }, credentials: { api_key: "k-123" }, expires_at: null });
  const seen = provider(id);
  await client().fetch(id)(`${server.url}/api/${id}/items`);
  assert.equal(seen[0]!.headers["x-acme-key"], "Token k-123");
});

test("api_key in the query, with its prefix, the rest of the query kept as written", async () => {
  const id = newId();
  serveToken(id, { strategy: { type: "api_key", in: "query", name: "api_key", prefix: "pre_" }, credentials: { api_key: "k/+ 1" }, expires_at: null });
  const seen = provider(id);
  await client().fetch(id)(new URL(`${server.url}/api/${id}/items?a=1&api_key=old&b=x%20y`));
  const url = new URL(seen[0]!.url, server.url);
  assert.equal(url.searchParams.get("api_key"), "pre_k/+ 1");
  assert.equal(url.searchParams.getAll("api_key").length, 1);
  assert.match(seen[0]!.url, /\?a=1&b=x%20y&api_key=pre_k%2F%2B%201$/);
});

test("basic_auth: Authorization: Basic of user:password in UTF-8", async () => {
  const id = newId();
  serveToken(id, { strategy: { type: "basic_auth" }, credentials: { username: "AC01", password: "pässwörd:x" }, expires_at: null });
  const seen = provider(id);
  await client().fetch(id)(`${server.url}/api/${id}/calls`);
  assert.equal(seen[0]!.headers["authorization"], "Basic " + Buffer.from("AC01:pässwörd:x", "utf8").toString("base64"));
});

test("aws_sigv4: the request is signed locally, with the session token, and the signature matches what arrived", async () => {
  const id = newId();
  const creds = { access_key_id: "AKIDEXAMPLE", secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", session_token: "session-tok" };
  serveToken(id, { strategy: { type: "aws_sigv4", region: "eu-west-1", service: "execute-api" }, credentials: creds, expires_at: null });
  const seen = provider(id);
  const body = JSON.stringify({ hello: "wörld" });
  await client().fetch(id)(`${server.url}/api/${id}/objects/a%20b?z=1&a=2`, { method: "POST", body, headers: { "Content-Type": "application/json", "X-Custom": "  v  1 " } });
  const got = seen[0]!;
  assert.equal(got.headers["x-amz-security-token"], "session-tok");
  assert.equal(got.headers["x-amz-content-sha256"], await sha(body));
  const authz = String(got.headers["authorization"]);
  const m = /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/(\d{8})\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(authz);
  assert.ok(m, authz);
  const signedNames = m[2]!.split(";");
  assert.ok(signedNames.includes("host") && signedNames.includes("x-amz-date") && signedNames.includes("x-amz-security-token") && signedNames.includes("content-type") && signedNames.includes("x-custom"));
  // Verify as a service would: recompute from what arrived, over the headers the signature names.
  const headers: Array<[string, string]> = signedNames.map((n) => [n, String(got.headers[n])]);
  const [path, query = ""] = got.url.split("?");
  const again = await signV4({
    method: "POST", host: String(got.headers["host"]), path: path!, query, headers, payloadHash: await sha(got.body.toString("utf8")),
    region: "eu-west-1", service: "execute-api",
    credentials: { accessKeyId: creds.access_key_id, secretAccessKey: creds.secret_access_key, sessionToken: creds.session_token },
    date: amzDate(String(got.headers["x-amz-date"])), addContentSha256Header: true,
  });
  assert.equal(again.signature, m[3]);
});

async function sha(text: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function amzDate(v: string): Date {
  return new Date(Date.UTC(+v.slice(0, 4), +v.slice(4, 6) - 1, +v.slice(6, 8), +v.slice(9, 11), +v.slice(11, 13), +v.slice(13, 15)));
}

test("a Request object works as input, its body read once and sent", async () => {
  const id = newId();
  serveToken(id, bearerToken("req-tok", null));
  const seen = provider(id);
  const request = new Request(`${server.url}/api/${id}/upload`, { method: "POST", body: "payload", headers: { "X-A": "1" } });
  const response = await client().fetch(id)(request);
  assert.equal(response.status, 200);
  assert.equal(seen[0]!.body.toString(), "payload");
  assert.equal(seen[0]!.headers["authorization"], "Bearer req-tok");
  assert.equal(seen[0]!.headers["x-a"], "1");
});

/** A provider that accepts only `good` as the Bearer token. */
function strictProvider(id: string, good: string): Received[] {
  const seen: Received[] = [];
  const handler = (req: Received, res: import("node:http").ServerResponse) => {
    seen.push(req);
    if (req.headers["authorization"] === `Bearer ${good}`) json(res, 200, { ok: true, body: req.body.toString() });
    else json(res, 401, { error: "invalid_token" });
  };
  server.on("GET", new RegExp(`^/api/${id}/`), handler);
  server.on("POST", new RegExp(`^/api/${id}/`), handler);
  return seen;
}

test("a provider 401 forces one refresh and one retry with the new token, body replayed", async () => {
  const id = newId();
  let version = 1;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, bearerToken(`tok-${version}`, null)));
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => {
    version++;
    json(res, 200, connection(id, "active"));
  });
  const seen = strictProvider(id, "tok-2");
  const response = await client().fetch(id)(`${server.url}/api/${id}/x`, { method: "POST", body: "same body" });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).body, "same body");
  assert.equal(seen.length, 2);
  assert.equal(server.count(`POST /v1/refresh/${id}`), 1);
});

test("a second 401 is returned as it is: one retry only", async () => {
  const id = newId();
  let version = 1;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, bearerToken(`tok-${version}`, null)));
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => {
    version++;
    json(res, 200, connection(id, "active"));
  });
  const seen = strictProvider(id, "never");
  const response = await client().fetch(id)(`${server.url}/api/${id}/x`);
  assert.equal(response.status, 401);
  assert.equal(seen.length, 2);
  assert.equal(server.count(`POST /v1/refresh/${id}`), 1);
});

test("a streamed body is not replayed: the 401 is returned without a refresh", async () => {
  const id = newId();
  serveToken(id, bearerToken("tok-1", null));
  const seen = strictProvider(id, "tok-2");
  const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("streamed")); c.close(); } });
  const response = await client().fetch(id)(`${server.url}/api/${id}/x`, { method: "POST", body: stream, duplex: "half" } as RequestInit);
  assert.equal(response.status, 401);
  assert.equal(seen.length, 1);
  assert.equal(server.count(`POST /v1/refresh/${id}`), 0);
});

test("concurrent 401s of one connection share one refresh", async () => {
  const id = newId();
  let version = 1;
  const release = deferred();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, bearerToken(`tok-${version}`, null)));
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), async (_req, res) => {
    await release.promise;
    version++;
    json(res, 200, connection(id, "active"));
  });
  const seen = strictProvider(id, "tok-2");
  const nexus = client();
  await nexus.getCredentials(id);
  const call = nexus.fetch(id);
  const calls = Array.from({ length: 20 }, () => call(`${server.url}/api/${id}/x`));
  // Release the refresh once all twenty have had their 401.
  while (seen.length < 20) await new Promise((r) => setImmediate(r));
  release.resolve();
  const responses = await Promise.all(calls);
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(server.count(`POST /v1/refresh/${id}`), 1);
  assert.equal(server.count(`GET /v1/token/${id}`), 2);
});

test("a 401 whose refresh finds the grant revoked throws AttentionRequiredError", async () => {
  const id = newId();
  serveToken(id, bearerToken("tok-1", null));
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => notActive(res, id, "attention_required", "invalid_grant"));
  strictProvider(id, "tok-2");
  const error = await client().fetch(id)(`${server.url}/api/${id}/x`).catch((e) => e);
  assert.ok(error instanceof AttentionRequiredError, String(error));
  assert.equal(error.connectionId, id);
  assert.equal(error.reason, "invalid_grant");
});

test("a 401 for an API key is retried only if Nexus now holds a different key", async () => {
  const id = newId();
  let key = "k1";
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) =>
    json(res, 200, { strategy: { type: "api_key", in: "header", name: "X-Key", prefix: "" }, credentials: { api_key: key }, expires_at: null }));
  const seen: Received[] = [];
  server.on("GET", new RegExp(`^/api/${id}/`), (req, res) => {
    seen.push(req);
    json(res, req.headers["x-key"] === "k2" ? 200 : 401, {});
  });
  const call = client().fetch(id);
  assert.equal((await call(`${server.url}/api/${id}/a`)).status, 401);
  assert.equal(seen.length, 1); // the same key again: no retry
  key = "k2";
  assert.equal((await call(`${server.url}/api/${id}/a`)).status, 200);
  assert.equal(server.count(`POST /v1/refresh/${id}`), 0);
});

test("through the Bridge: the path goes to /v1/bridge/{id}/… with the API key, the provider's answer comes back", async () => {
  const id = newId();
  const seen: Received[] = [];
  server.on("POST", new RegExp(`^/v1/bridge/${id}/`), (req, res) => {
    seen.push(req);
    json(res, 404, { provider: "not here" });
  });
  const call = client().fetch(id, { bridge: true });
  const response = await call("/repos/x/y?page=2", { method: "POST", body: "b", headers: { "X-Thing": "1" } });
  assert.equal(response.status, 404);
  assert.deepEqual(await response.json(), { provider: "not here" });
  assert.equal(seen[0]!.url, `/v1/bridge/${id}/repos/x/y?page=2`);
  assert.equal(seen[0]!.headers["x-api-key"], KEY);
  assert.equal(seen[0]!.headers["x-thing"], "1");
  assert.equal(seen[0]!.body.toString(), "b");
  assert.equal(server.count(`GET /v1/token/${id}`), 0);
});

test("through the Bridge: Nexus's own problems are typed errors; transient ones are retried for GET", async () => {
  const id = newId();
  let calls = 0;
  server.on("GET", new RegExp(`^/v1/bridge/${id}/`), (req, res) => {
    calls++;
    if (req.path.endsWith("/attention")) notActive(res, id, "attention_required", "invalid_grant");
    else if (req.path.endsWith("/flaky") && calls < 3) problem(res, 502, "upstream_unreachable");
    else json(res, 200, { ok: true });
  });
  const call = client().fetch(id, { bridge: true });
  const error = await call("/attention").catch((e) => e);
  assert.ok(error instanceof AttentionRequiredError);
  assert.equal(error.connectionId, id);
  calls = 0;
  assert.equal((await call(`${server.url}/flaky`)).status, 200);
  assert.equal(calls, 3);
  const gone = newId();
  await assert.rejects(client().fetch(gone, { bridge: true })("/x"), NotFoundError);
});

/** Another origin (its own port): records every request, answers 200 with what arrived. */
async function elsewhere(): Promise<TestServer> {
  const other = await TestServer.start();
  for (const method of ["GET", "POST"]) {
    other.on(method, /^\//, (req, res) => json(res, 200, { landed: req.path }));
  }
  return other;
}

test("through the Bridge, a provider's redirect comes back as it is and the API key never reaches the host it names", async () => {
  const other = await elsewhere();
  try {
    const id = newId();
    server.on("GET", new RegExp(`^/v1/bridge/${id}/`), (_req, res) => {
      res.writeHead(302, { location: `${other.url}/repositories/42` });
      res.end();
    });
    const call = client().fetch(id, { bridge: true });
    for (const init of [{}, { redirect: "follow" as const }, { redirect: "manual" as const }]) {
      const response = await call("/repos/old/name", init);
      assert.equal(response.status, 302);
      assert.equal(response.headers.get("location"), `${other.url}/repositories/42`);
    }
    assert.equal(server.count(`GET /v1/bridge/${id}/repos/old/name`), 3);
    assert.deepEqual(other.received, []);
    await assert.rejects(call("/repos/old/name", { redirect: "error" }), TypeError);
    assert.deepEqual(other.received, []);
  } finally {
    await other.close();
  }
});

test("a provider's redirect to another host is followed without the credentials: no API key header, no X-Amz-*", async () => {
  const other = await elsewhere();
  try {
    const strategies: Array<[Record<string, unknown>, Record<string, string>, string[]]> = [
      [{ type: "api_key", in: "header", name: "X-Acme-Key", prefix: "Token " }, { api_key: "k-secret" }, ["x-acme-key"]],
      [{ type: "aws_sigv4", region: "eu-west-1", service: "execute-api" }, { access_key_id: "AKIDEXAMPLE", secret_access_key: "aws-secret", session_token: "session-secret" },
        ["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"]],
      [{ type: "oauth2" }, { access_token: "at-secret" }, ["authorization"]],
    ];
    for (const [strategy, credentials, names] of strategies) {
      const id = newId();
      serveToken(id, { strategy, credentials, expires_at: null });
      const seen: Received[] = [];
      server.on("GET", new RegExp(`^/api/${id}/download$`), (req, res) => {
        seen.push(req);
        res.writeHead(302, { location: `${other.url}/blob/${id}` });
        res.end();
      });
      const response = await client().fetch(id)(`${server.url}/api/${id}/download`, { headers: { "X-Caller": "mine" } });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { landed: `/blob/${id}` });
      for (const name of names) {
        assert.ok(seen[0]!.headers[name], `${name} reached the provider`);
      }
      const landed = other.received.find((r) => r.path === `/blob/${id}`)!;
      assert.deepEqual(names.filter((name) => landed.headers[name] !== undefined), [], `${strategy["type"]}: credentials followed the redirect`);
      assert.equal(landed.headers["x-caller"], "mine");
    }
  } finally {
    await other.close();
  }
});

test("a redirect on the provider's own host gets the credentials again; 303 after a POST becomes a GET, 307 keeps the body", async () => {
  const id = newId();
  serveToken(id, { strategy: { type: "api_key", in: "header", name: "X-Acme-Key" }, credentials: { api_key: "k-1" }, expires_at: null });
  const seen: Received[] = [];
  server.on("POST", new RegExp(`^/api/${id}/(old|submit)$`), (req, res) => {
    seen.push(req);
    res.writeHead(req.path.endsWith("/old") ? 307 : 303, { location: req.path.endsWith("/old") ? "new" : `/api/${id}/result` });
    res.end();
  });
  server.on("POST", new RegExp(`^/api/${id}/new$`), (req, res) => {
    seen.push(req);
    json(res, 200, { body: req.body.toString() });
  });
  server.on("GET", new RegExp(`^/api/${id}/result$`), (req, res) => {
    seen.push(req);
    json(res, 200, { body: req.body.toString() });
  });
  const call = client().fetch(id);
  const kept = await call(`${server.url}/api/${id}/old`, { method: "POST", body: "payload", headers: { "Content-Type": "text/plain" } });
  assert.deepEqual(await kept.json(), { body: "payload" });
  const turned = await call(`${server.url}/api/${id}/submit`, { method: "POST", body: "payload", headers: { "Content-Type": "text/plain" } });
  assert.deepEqual(await turned.json(), { body: "" });
  assert.deepEqual(seen.map((r) => [r.method, r.path, r.headers["x-acme-key"]]), [
    ["POST", `/api/${id}/old`, "k-1"], ["POST", `/api/${id}/new`, "k-1"], ["POST", `/api/${id}/submit`, "k-1"], ["GET", `/api/${id}/result`, "k-1"],
  ]);
  assert.equal(seen[3]!.headers["content-type"], undefined);
});
