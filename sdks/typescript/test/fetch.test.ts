// nexus.fetch(connectionId): every strategy applied to what the provider receives, the single retry after a
// provider 401, and the Bridge. One loopback server plays both Nexus and the provider.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { AttentionRequiredError, Nexus, NotFoundError, TimeoutError, signV4 } from "../src/index.js";
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

/** Redirects through the Bridge: Nexus (`server`) answers the Bridge with `answer`; the provider's host is `other`. */
function bridgeRoutes(id: string, answer: (req: Received, res: import("node:http").ServerResponse) => void): Received[] {
  const seen: Received[] = [];
  for (const method of ["GET", "POST", "PUT"]) {
    server.on(method, new RegExp(`^/v1/bridge/${id}(/|$)`), (req, res) => {
      seen.push(req);
      answer(req, res);
    });
  }
  return seen;
}

function redirect(res: import("node:http").ServerResponse, status: number, location: string): void {
  res.writeHead(status, { location });
  res.end();
}

test("through the Bridge, a redirect the Bridge rewrote to its own path is followed with the API key, and nothing reaches the provider's host", async () => {
  const other = await elsewhere();
  try {
    const id = newId();
    const seen = bridgeRoutes(id, (req, res) => {
      if (req.path.endsWith("/repos/old/name")) redirect(res, 301, `/v1/bridge/${id}/repos/new/name?page=2`);
      else if (req.path.endsWith("/export")) redirect(res, 302, "export/part-2");
      else if (req.path.endsWith("/export/part-2")) redirect(res, 307, `${server.url}/v1/bridge/${id}`);
      else json(res, 200, { at: req.url });
    });
    const call = client().fetch(id, { bridge: true });
    const renamed = await call("/repos/old/name", { headers: { "X-Caller": "mine" } });
    assert.equal(renamed.status, 200);
    assert.deepEqual(await renamed.json(), { at: `/v1/bridge/${id}/repos/new/name?page=2` });
    // A relative Location, then an absolute one on Nexus naming the API's base itself.
    const exported = await call("/export", { redirect: "follow" });
    assert.deepEqual(await exported.json(), { at: `/v1/bridge/${id}` });
    assert.deepEqual(seen.map((r) => r.url), [
      `/v1/bridge/${id}/repos/old/name`, `/v1/bridge/${id}/repos/new/name?page=2`, `/v1/bridge/${id}/export`, `/v1/bridge/${id}/export/part-2`, `/v1/bridge/${id}`,
    ]);
    assert.ok(seen.every((r) => r.headers["x-api-key"] === KEY), "every hop to the Bridge carries the key");
    assert.equal(seen[1]!.headers["x-caller"], "mine");
    assert.deepEqual(other.received, []);
  } finally {
    await other.close();
  }
});

test("through the Bridge, a redirect anywhere but this connection's Bridge on Nexus comes back as the 3xx, its Location untouched", async () => {
  const other = await elsewhere();
  try {
    const id = newId();
    const port = new URL(server.url).port;
    const locations = [
      `${other.url}/repos/new/name`, // the provider's host, outside the API (passed on by the Bridge as the provider wrote it)
      `${other.url}/v1/bridge/${id}/repos/new/name`, // a Bridge path on another origin
      `http://localhost:${port}/v1/bridge/${id}/x`, // Nexus's server under another host name: another origin
      "/other/place", // on Nexus, not the Bridge (a provider's absolute path outside its API's base path)
      `/v1/bridge/${id}x/y`, // another connection whose id starts with this one's
      `/v1/bridge/${id}/../conn_other/y`, // dot segments out of this connection's Bridge
      `/v1/bridge/${id}/%2e%2e/conn_other/y`,
      `/v1/bridge/conn_other/y`,
      "ftp://example.com/file",
    ];
    let next = 0;
    const seen = bridgeRoutes(id, (_req, res) => redirect(res, 302, locations[next++]!));
    const call = client().fetch(id, { bridge: true });
    for (const location of locations) {
      const response = await call("/repos/old/name");
      assert.equal(response.status, 302, location);
      assert.equal(response.headers.get("location"), location);
    }
    assert.equal(seen.length, locations.length);
    assert.deepEqual(other.received, []);
    assert.equal(server.received.filter((r) => r.path === "/other/place" || r.path.includes("conn_other") || r.path.startsWith(`/v1/bridge/${id}x`)).length, 0);
  } finally {
    await other.close();
  }
});

test("through the Bridge, a followed redirect changes the method as fetch does: 303 and a POST's 301/302 become a GET without the body, 307/308 keep both", async () => {
  const id = newId();
  const seen = bridgeRoutes(id, (req, res) => {
    const status = /\/(30[1278]|303)$/.exec(req.path)?.[1];
    if (status) redirect(res, Number(status), `/v1/bridge/${id}/landed`);
    else json(res, 200, { method: req.method, body: req.body.toString(), type: req.headers["content-type"] ?? null });
  });
  const call = client().fetch(id, { bridge: true });
  const expected: Array<[string, string, unknown]> = [
    ["POST", "301", { method: "GET", body: "", type: null }],
    ["POST", "302", { method: "GET", body: "", type: null }],
    ["PUT", "303", { method: "GET", body: "", type: null }],
    ["PUT", "301", { method: "PUT", body: "payload", type: "text/plain" }],
    ["POST", "307", { method: "POST", body: "payload", type: "text/plain" }],
    ["PUT", "308", { method: "PUT", body: "payload", type: "text/plain" }],
  ];
  for (const [method, status, landed] of expected) {
    const response = await call(`/${status}`, { method, body: "payload", headers: { "Content-Type": "text/plain" } });
    assert.deepEqual(await response.json(), landed, `${method} then ${status}`);
  }
  assert.ok(seen.every((r) => r.headers["x-api-key"] === KEY));
});

test("through the Bridge, a 307 for a streamed body, which cannot be sent again, comes back as the 3xx", async () => {
  const id = newId();
  const seen = bridgeRoutes(id, (req, res) => (req.path.endsWith("/upload") ? redirect(res, 307, `/v1/bridge/${id}/elsewhere`) : json(res, 200, {})));
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("streamed"));
      controller.close();
    },
  });
  const response = await client().fetch(id, { bridge: true })("/upload", { method: "POST", body, duplex: "half" } as RequestInit);
  assert.equal(response.status, 307);
  assert.equal(response.headers.get("location"), `/v1/bridge/${id}/elsewhere`);
  assert.deepEqual(seen.map((r) => [r.path, r.body.toString()]), [[`/v1/bridge/${id}/upload`, "streamed"]]);
});

test("through the Bridge, at most 20 redirects are followed, as fetch does", async () => {
  const id = newId();
  const seen = bridgeRoutes(id, (req, res) => {
    const n = Number(/\/hop\/(\d+)$/.exec(req.path)?.[1] ?? "0");
    if (req.path.includes("/loop/")) redirect(res, 302, `/v1/bridge/${id}/loop/${n + 1}`);
    else if (n < 20) redirect(res, 302, `/v1/bridge/${id}/hop/${n + 1}`);
    else json(res, 200, { hop: n });
  });
  const call = client().fetch(id, { bridge: true });
  assert.deepEqual(await (await call("/hop/0")).json(), { hop: 20 });
  assert.equal(seen.length, 21);
  await assert.rejects(call("/loop/0"), TypeError);
  assert.equal(seen.length, 21 + 21);
});

test("through the Bridge, redirect \"manual\" hands back the Bridge's 3xx, and its Location sent back is used as it is; \"error\" throws", async () => {
  const id = newId();
  const seen = bridgeRoutes(id, (req, res) => (req.path.endsWith("/old") ? redirect(res, 301, `/v1/bridge/${id}/new?page=2`) : json(res, 200, { at: req.url })));
  const call = client().fetch(id, { bridge: true });
  const response = await call("/old", { redirect: "manual" });
  assert.equal(response.status, 301);
  const location = response.headers.get("location")!;
  assert.equal(location, `/v1/bridge/${id}/new?page=2`);
  assert.deepEqual(await (await call(new URL(location, server.url))).json(), { at: `/v1/bridge/${id}/new?page=2` });
  await assert.rejects(call("/old", { redirect: "error" }), TypeError);
  assert.deepEqual(seen.map((r) => r.url), [`/v1/bridge/${id}/old`, `/v1/bridge/${id}/new?page=2`, `/v1/bridge/${id}/old`]);
});

test("through the Bridge, Nexus's problem on a followed hop is a typed error", async () => {
  const id = newId();
  bridgeRoutes(id, (req, res) => (req.path.endsWith("/old") ? redirect(res, 302, `/v1/bridge/${id}/attention`) : notActive(res, id, "attention_required", "invalid_grant")));
  const error = await client().fetch(id, { bridge: true })("/old").catch((e) => e);
  assert.ok(error instanceof AttentionRequiredError);
});

test("through the Bridge: a request that stalls ends at the client's timeoutMs with a TimeoutError, not retried; a slow body is still read", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/bridge/${id}/stall$`), (_req, res) => {
    const timer = setTimeout(() => json(res, 200, { late: true }), 10_000); // no answer within the test
    res.on("close", () => clearTimeout(timer));
  });
  server.on("GET", new RegExp(`^/v1/bridge/${id}/slow-body$`), (_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.flushHeaders();
    setTimeout(() => res.end("slow body"), 300);
  });
  const nexus = new Nexus({ baseUrl: server.url, apiKey: KEY, timeoutMs: 150, retry: { baseDelayMs: 1 } });
  const started = Date.now();
  const error = await nexus.fetch(id, { bridge: true })("/stall").catch((e) => e);
  assert.ok(error instanceof TimeoutError, String(error));
  assert.ok(Date.now() - started < 5_000);
  assert.equal(server.count(`GET /v1/bridge/${id}/stall`), 1);
  const response = await nexus.fetch(id, { bridge: true })("/slow-body");
  assert.equal(await response.text(), "slow body");
});
