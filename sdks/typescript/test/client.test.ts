// The client against a loopback Nexus stand-in: configuration, operations, the credential cache and its single
// shared fetch, retry rules, timeouts and cancellation, typed errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  AttentionRequiredError,
  AuthenticationError,
  ConfigurationError,
  ForbiddenError,
  Nexus,
  NetworkError,
  NotActiveError,
  NotFoundError,
  RateLimitedError,
  RequestError,
  TimeoutError,
  UnavailableError,
} from "../src/index.js";
import { TestServer, bearerToken, connection, deferred, json, notActive, problem } from "./server.js";

const KEY = "nxk_test_api_key_SECRET";
let server: TestServer;

before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
});

/** A fresh path prefix per test: each test's routes see only its own connection ids. */
let counter = 0;
const newId = () => `conn_${++counter}_${Math.random().toString(36).slice(2, 8)}`;

function client(extra: ConstructorParameters<typeof Nexus>[0] = {}): Nexus {
  return new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { baseDelayMs: 1, maxDelayMs: 5 }, ...extra });
}

test("the client reads NEXUS_URL and NEXUS_API_KEY from the environment, options win", () => {
  const saved = { url: process.env["NEXUS_URL"], key: process.env["NEXUS_API_KEY"] };
  try {
    process.env["NEXUS_URL"] = "http://127.0.0.1:1/";
    process.env["NEXUS_API_KEY"] = KEY;
    assert.equal(new Nexus().baseUrl, "http://127.0.0.1:1");
    assert.equal(new Nexus({ baseUrl: "http://127.0.0.1:2" }).baseUrl, "http://127.0.0.1:2");
    delete process.env["NEXUS_API_KEY"];
    assert.throws(() => new Nexus(), ConfigurationError);
    delete process.env["NEXUS_URL"];
    assert.throws(() => new Nexus({ apiKey: KEY }), ConfigurationError);
    assert.throws(() => new Nexus({ apiKey: KEY, baseUrl: "ftp://x" }), ConfigurationError);
  } finally {
    restore("NEXUS_URL", saved.url);
    restore("NEXUS_API_KEY", saved.key);
  }
});

function restore(name: string, value: string | undefined) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

test("request, get, list and delete map Nexus's JSON and send the API key", async () => {
  const id = newId();
  server
    .on("POST", /^\/v1\/request-connection$/, (req, res) => {
      const body = JSON.parse(req.body.toString());
      assert.deepEqual(body, { workspace_id: "ws_1", provider_name: "acme", return_url: "http://localhost:3000/back", scopes: ["read"] });
      assert.equal(req.headers["x-api-key"], KEY);
      json(res, 201, { auth_url: "http://provider/authorize?state=x", connection_id: id });
    })
    .on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => json(res, 200, connection(id, "active", { expires_at: 99, error: null })))
    .on("GET", /^\/v1\/connections$/, (req, res) => {
      assert.match(req.url, /workspace_id=ws_1/);
      assert.match(req.url, /limit=5/);
      json(res, 200, { connections: [connection(id, "pending")] });
    })
    .on("DELETE", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
      res.writeHead(204);
      res.end();
    });
  const nexus = client();
  const requested = await nexus.requestConnection({ workspaceId: "ws_1", provider: "acme", scopes: ["read"], returnUrl: "http://localhost:3000/back" });
  assert.deepEqual(requested, { authUrl: "http://provider/authorize?state=x", connectionId: id });
  const got = await nexus.getConnection(id);
  assert.equal(got.connectionId, id);
  assert.equal(got.status, "active");
  assert.equal(got.workspaceId, "ws_1");
  assert.equal(got.expiresAt, 99);
  const listed = await nexus.listConnections({ workspaceId: "ws_1", limit: 5 });
  assert.equal(listed.length, 1);
  assert.equal(listed[0]!.status, "pending");
  assert.equal(await nexus.deleteConnection(id), undefined);
});

test("1,000 concurrent callers on a cold entry share exactly one GET /v1/token", async () => {
  const id = newId();
  const release = deferred();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), async (_req, res) => {
    await release.promise;
    json(res, 200, bearerToken("tok-1", Math.floor(Date.now() / 1000) + 3600));
  });
  const nexus = client();
  const callers = Array.from({ length: 1000 }, () => nexus.getCredentials(id));
  release.resolve();
  const results = await Promise.all(callers);
  assert.equal(server.count(`GET /v1/token/${id}`), 1);
  assert.ok(results.every((c) => c === results[0] && c.accessToken === "tok-1"));
  // Cached: no more fetches.
  await nexus.getCredentials(id);
  assert.equal(server.count(`GET /v1/token/${id}`), 1);
});

test("credentials are cached until shortly before expires_at, then 1,000 callers share exactly one new fetch", async () => {
  const id = newId();
  let now = 1_700_000_000_000;
  const expiresAt = now / 1000 + 3600;
  let served = 0;
  let release = deferred();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), async (_req, res) => {
    served++;
    await release.promise;
    json(res, 200, bearerToken(`tok-${served}`, served === 1 ? expiresAt : expiresAt + 3600));
  });
  const nexus = client({ now: () => now, refreshMarginSeconds: 60 });
  release.resolve();
  assert.equal((await nexus.getCredentials(id)).accessToken, "tok-1");

  now = expiresAt * 1000 - 61_000; // still outside the margin
  assert.equal((await nexus.getCredentials(id)).accessToken, "tok-1");
  assert.equal(served, 1);

  now = expiresAt * 1000 - 59_000; // within the margin: expired for the cache
  release = deferred();
  const callers = Array.from({ length: 1000 }, () => nexus.getCredentials(id));
  release.resolve();
  const results = await Promise.all(callers);
  assert.equal(served, 2);
  assert.ok(results.every((c) => c.accessToken === "tok-2"));
});

test("credentials that do not expire are cached for maxCacheSeconds; invalidate drops them", async () => {
  const id = newId();
  let now = 1_000_000;
  let served = 0;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => {
    served++;
    json(res, 200, { strategy: { type: "api_key", in: "header", name: "X-Key", prefix: null }, credentials: { api_key: `k${served}` }, expires_at: null });
  });
  const nexus = client({ now: () => now, maxCacheSeconds: 10 });
  assert.equal((await nexus.getCredentials(id)).apiKey, "k1");
  now += 9_000;
  assert.equal((await nexus.getCredentials(id)).apiKey, "k1");
  now += 2_000;
  assert.equal((await nexus.getCredentials(id)).apiKey, "k2");
  nexus.invalidate(id);
  assert.equal((await nexus.getCredentials(id)).apiKey, "k3");
});

test("a failed fetch is not cached: the next caller tries again", async () => {
  const id = newId();
  let served = 0;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => {
    served++;
    if (served === 1) problem(res, 503, "refresh_unavailable", {}, { "Retry-After": "120" });
    else json(res, 200, bearerToken("tok", null));
  });
  const nexus = client();
  await assert.rejects(nexus.getCredentials(id), UnavailableError);
  assert.equal((await nexus.getCredentials(id)).accessToken, "tok");
});

test("idempotent calls are retried on 503 and 429 with backoff; the answer after the retries wins", async () => {
  const id = newId();
  let served = 0;
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    served++;
    if (served === 1) problem(res, 503, "database_unavailable", {}, { "Retry-After": "0" });
    else if (served === 2) problem(res, 429, "rate_limited");
    else json(res, 200, connection(id, "active"));
  });
  const got = await client().getConnection(id);
  assert.equal(got.status, "active");
  assert.equal(served, 3);
});

test("retries stop after maxAttempts and the typed error carries Retry-After", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => problem(res, 429, "rate_limited", {}, { "Retry-After": "0" }));
  const error = await client({ retry: { maxAttempts: 4, baseDelayMs: 1 } }).getCredentials(id).catch((e) => e);
  assert.ok(error instanceof RateLimitedError);
  assert.equal(error.retryAfter, 0);
  assert.equal(server.count(`GET /v1/token/${id}`), 4);
});

test("a Retry-After is waited for before the retry", async () => {
  const id = newId();
  const times: number[] = [];
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    times.push(performance.now());
    if (times.length === 1) problem(res, 503, "refresh_unavailable", {}, { "Retry-After": "1" });
    else json(res, 200, connection(id, "active"));
  });
  await client({ random: () => 0 }).getConnection(id);
  assert.equal(times.length, 2);
  assert.ok(times[1]! - times[0]! >= 990, `retried after ${times[1]! - times[0]!} ms`);
});

test("a Retry-After longer than maxRetryAfterMs is not waited for: the error is thrown at once", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => problem(res, 503, "refresh_unavailable", {}, { "Retry-After": "3600" }));
  const error = await client().getCredentials(id).catch((e) => e);
  assert.ok(error instanceof UnavailableError);
  assert.equal(error.retryAfter, 3600);
  assert.equal(error.code, "refresh_unavailable");
  assert.equal(server.count(`GET /v1/token/${id}`), 1);
});

test("POST calls are never retried, even on 503", async () => {
  const id = newId();
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => problem(res, 503, "refresh_unavailable", {}, { "Retry-After": "0" }));
  await assert.rejects(client().refresh(id), UnavailableError);
  assert.equal(server.count(`POST /v1/refresh/${id}`), 1);
});

test("attention_required is a typed error with the connection id and reason, and is never retried", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => notActive(res, id, "attention_required", "invalid_grant"));
  const error = await client({ retry: { maxAttempts: 5 } }).getCredentials(id).catch((e) => e);
  assert.ok(error instanceof AttentionRequiredError, String(error));
  assert.equal(error.connectionId, id);
  assert.equal(error.reason, "invalid_grant");
  assert.equal(error.status, 409);
  assert.equal(server.count(`GET /v1/token/${id}`), 1);
});

test("the connection's status is found whichever 'status' JSON.parse keeps", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => {
    res.writeHead(409, { "content-type": "application/problem+json" });
    res.end(`{"code":"connection_not_active","status":"attention_required","connection_id":"${id}","status":409}`);
  });
  const error = await client().getCredentials(id).catch((e) => e);
  assert.ok(error instanceof AttentionRequiredError);
  assert.equal(error.connectionId, id);
});

test("a pending or failed connection is NotActiveError, distinct from attention required", async () => {
  const pending = newId();
  const failed = newId();
  server.on("GET", new RegExp(`^/v1/token/${pending}$`), (_req, res) => notActive(res, pending, "pending"));
  server.on("GET", new RegExp(`^/v1/token/${failed}$`), (_req, res) => notActive(res, failed, "failed", "access_denied"));
  const e1 = await client().getCredentials(pending).catch((e) => e);
  assert.ok(e1 instanceof NotActiveError && !(e1 instanceof AttentionRequiredError));
  assert.equal(e1.connectionStatus, "pending");
  const e2 = await client().getCredentials(failed).catch((e) => e);
  assert.ok(e2 instanceof NotActiveError);
  assert.equal(e2.reason, "access_denied");
});

test("401, 403, 404 and 400 are AuthenticationError, ForbiddenError, NotFoundError and RequestError", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}-401$`), (_req, res) => problem(res, 401, "unauthorized"));
  server.on("GET", new RegExp(`^/v1/token/${id}-403$`), (_req, res) => problem(res, 403, "credentials_not_readable"));
  server.on("GET", new RegExp(`^/v1/token/${id}-400$`), (_req, res) => problem(res, 400, "validation_failed"));
  const nexus = client();
  await assert.rejects(nexus.getCredentials(`${id}-401`), AuthenticationError);
  const forbidden = await nexus.getCredentials(`${id}-403`).catch((e) => e);
  assert.ok(forbidden instanceof ForbiddenError);
  assert.equal(forbidden.code, "credentials_not_readable");
  const missing = await nexus.getConnection(`${id}-none`).catch((e) => e);
  assert.ok(missing instanceof NotFoundError);
  assert.equal(missing.code, "not_found");
  // A 404 without a problem body (a proxy in front of Nexus that does not know the path) is a NotFoundError too, but
  // not Nexus saying "not_found": its code is "", as in Go, Python and .NET.
  server.on("GET", new RegExp(`^/v1/connections/${id}-proxied$`), (_req, res) => { res.writeHead(404, { "content-type": "text/html" }); res.end("<h1>no route</h1>"); });
  const proxied = await nexus.getConnection(`${id}-proxied`).catch((e) => e);
  assert.ok(proxied instanceof NotFoundError);
  assert.equal(proxied.code, "");
  await assert.rejects(nexus.getCredentials(`${id}-400`), RequestError);
  assert.equal(server.count(`GET /v1/token/${id}-401`), 1);
});

test("a 500 from Nexus is a RequestError with its status and code, not an UnavailableError; 502, 503 and 504 are UnavailableErrors", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}-500$`), (_req, res) => problem(res, 500, "internal_error"));
  server.on("GET", new RegExp(`^/v1/token/${id}-501$`), (_req, res) => problem(res, 501, "not_implemented"));
  server.on("GET", new RegExp(`^/v1/token/${id}-502$`), (_req, res) => problem(res, 502, "upstream_unreachable"));
  server.on("GET", new RegExp(`^/v1/token/${id}-503$`), (_req, res) => problem(res, 503, "refresh_unavailable"));
  server.on("GET", new RegExp(`^/v1/token/${id}-504$`), (_req, res) => problem(res, 504, "upstream_timeout"));
  // Without a problem body (a proxy's page): no code, as Go's empty Code and .NET's null Code.
  server.on("GET", new RegExp(`^/v1/token/${id}-bare500$`), (_req, res) => { res.writeHead(500, { "content-type": "text/html" }); res.end("<h1>oops</h1>"); });
  server.on("GET", new RegExp(`^/v1/token/${id}-bare503$`), (_req, res) => { res.writeHead(503, { "content-type": "text/html" }); res.end("<h1>busy</h1>"); });
  const nexus = client({ retry: { maxAttempts: 1 } });
  const fail = (suffix: string) => nexus.getCredentials(`${id}-${suffix}`).then(() => assert.fail(`${suffix} succeeded`), (e: unknown) => e);

  for (const [suffix, status, code] of [["500", 500, "internal_error"], ["501", 501, "not_implemented"], ["bare500", 500, ""]] as const) {
    const error = await fail(suffix);
    assert.ok(error instanceof RequestError, `${suffix}: ${String(error)}`);
    assert.ok(!(error instanceof UnavailableError), suffix);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
  }
  for (const [suffix, status, code] of [["502", 502, "upstream_unreachable"], ["503", 503, "refresh_unavailable"], ["504", 504, "upstream_timeout"], ["bare503", 503, ""]] as const) {
    const error = await fail(suffix);
    assert.ok(error instanceof UnavailableError, `${suffix}: ${String(error)}`);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
  }
});

test("a redirect from Nexus's API is a RequestError with its status, and X-API-Key never reaches the host it names", async () => {
  const elsewhere = await TestServer.start();
  try {
    elsewhere.on("GET", /./, (_req, res) => json(res, 200, bearerToken("tok-elsewhere", Math.floor(Date.now() / 1000) + 3600)));
    elsewhere.on("POST", /./, (_req, res) => json(res, 201, { auth_url: "http://x", connection_id: "conn_elsewhere" }));
    const id = newId();
    server.on("GET", new RegExp(`^/v1/token/${id}$`), (req, res) => {
      res.writeHead(302, { location: `${elsewhere.url}${req.path}` });
      res.end();
    });
    server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (req, res) => {
      res.writeHead(307, { location: `${elsewhere.url}${req.path}` });
      res.end();
    });
    const nexus = client();
    for (const [call, status] of [[() => nexus.getCredentials(id), 302], [() => nexus.refresh(id), 307]] as const) {
      const error = await call().then(() => assert.fail("the redirect was followed"), (e: unknown) => e);
      assert.ok(error instanceof RequestError, String(error));
      assert.equal(error.status, status);
      assert.equal(error.code, "");
    }
    assert.equal(server.count(`GET /v1/token/${id}`), 1, "a redirect is not retried");
    assert.equal(elsewhere.received.length, 0);
    assert.ok(elsewhere.received.every((r) => r.headers["x-api-key"] === undefined));
  } finally {
    await elsewhere.close();
  }
});

test("a call that gets no answer within timeoutMs is a TimeoutError", async () => {
  const id = newId();
  const hold = deferred();
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), async (_req, res) => {
    await hold.promise;
    json(res, 200, connection(id, "active"));
  });
  const error = await client({ timeoutMs: 50, retry: { maxAttempts: 1 } }).getConnection(id).catch((e) => e);
  hold.resolve();
  assert.ok(error instanceof TimeoutError, String(error));
});

test("an AbortSignal cancels a call with the signal's reason", async () => {
  const id = newId();
  const arrived = deferred();
  const hold = deferred();
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), async (_req, res) => {
    arrived.resolve();
    await hold.promise;
    json(res, 200, connection(id, "active"));
  });
  const controller = new AbortController();
  const call = client().getConnection(id, { signal: controller.signal });
  await arrived.promise;
  controller.abort(new Error("caller gave up"));
  await assert.rejects(call, /caller gave up/);
  hold.resolve();
});

test("aborting one caller of a shared credential fetch leaves the others their answer", async () => {
  const id = newId();
  const release = deferred();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), async (_req, res) => {
    await release.promise;
    json(res, 200, bearerToken("shared", null));
  });
  const nexus = client();
  const controller = new AbortController();
  const impatient = nexus.getCredentials(id, { signal: controller.signal });
  const patient = nexus.getCredentials(id);
  controller.abort();
  await assert.rejects(impatient, { name: "AbortError" });
  release.resolve();
  assert.equal((await patient).accessToken, "shared");
  assert.equal(server.count(`GET /v1/token/${id}`), 1);
});

test("Nexus that cannot be reached is a NetworkError (retried for GET)", async () => {
  const closed = await TestServer.start();
  const url = closed.url;
  await closed.close();
  const nexus = new Nexus({ baseUrl: url, apiKey: KEY, retry: { maxAttempts: 2, baseDelayMs: 1 } });
  await assert.rejects(nexus.getConnection("conn_x"), NetworkError);
});

test("waitUntilActive polls until the connection is active", async () => {
  const id = newId();
  let polls = 0;
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    polls++;
    json(res, 200, connection(id, polls < 3 ? "pending" : "active"));
  });
  const active = await client().waitUntilActive(id, { intervalMs: 1 });
  assert.equal(active.status, "active");
  assert.equal(polls, 3);
});

test("waitUntilActive throws TimeoutError for a connection still pending, and the typed errors for the others", async () => {
  const pending = newId();
  const attention = newId();
  const failed = newId();
  server.on("GET", new RegExp(`^/v1/connections/${pending}$`), (_req, res) => json(res, 200, connection(pending, "pending")));
  server.on("GET", new RegExp(`^/v1/connections/${attention}$`), (_req, res) => json(res, 200, connection(attention, "attention_required", { error: "invalid_grant" })));
  server.on("GET", new RegExp(`^/v1/connections/${failed}$`), (_req, res) => json(res, 200, connection(failed, "failed", { error: "access_denied" })));
  const nexus = client();
  await assert.rejects(nexus.waitUntilActive(pending, { timeoutMs: 30, intervalMs: 5 }), TimeoutError);
  const e = await nexus.waitUntilActive(attention).catch((x) => x);
  assert.ok(e instanceof AttentionRequiredError);
  assert.equal(e.reason, "invalid_grant");
  assert.equal(e.connectionId, attention);
  await assert.rejects(nexus.waitUntilActive(failed), NotActiveError);
});

test("waitUntilActive keeps polling while a reconnect waits for consent, whatever the status", async () => {
  const id = newId();
  let polls = 0;
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    polls++;
    // A reconnect keeps an attention_required or active status until the user completes the new consent.
    if (polls === 1) json(res, 200, connection(id, "attention_required", { reconnecting: true, error: "invalid_grant" }));
    else if (polls === 2) json(res, 200, connection(id, "active", { reconnecting: true }));
    else json(res, 200, connection(id, "active", { reconnecting: false }));
  });
  const active = await client().waitUntilActive(id, { intervalMs: 1 });
  assert.equal(active.status, "active");
  assert.equal(active.reconnecting, false);
  assert.equal(polls, 3);
});

test("waitUntilActive throws AttentionRequiredError once a failed reconnect clears reconnecting", async () => {
  const id = newId();
  let polls = 0;
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    polls++;
    json(res, 200, connection(id, "attention_required", { reconnecting: polls < 2, error: "invalid_grant" }));
  });
  const e = await client().waitUntilActive(id, { intervalMs: 1 }).catch((x) => x);
  assert.ok(e instanceof AttentionRequiredError);
  assert.equal(polls, 2);
});

test("refresh posts /v1/refresh and drops the cached credentials", async () => {
  const id = newId();
  let version = 1;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, bearerToken(`tok-${version}`, null)));
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => {
    version++;
    json(res, 200, connection(id, "active"));
  });
  const nexus = client();
  assert.equal((await nexus.getCredentials(id)).accessToken, "tok-1");
  assert.equal((await nexus.refresh(id)).status, "active");
  assert.equal((await nexus.getCredentials(id)).accessToken, "tok-2");
});

test("a refresh the provider rejects is AttentionRequiredError", async () => {
  const id = newId();
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => notActive(res, id, "attention_required", "invalid_grant"));
  const error = await client().refresh(id).catch((e) => e);
  assert.ok(error instanceof AttentionRequiredError);
  assert.equal(error.reason, "invalid_grant");
});

test("request() calls other routes, with another key for admin calls", async () => {
  server.on("POST", /^\/v1\/admin\/api-keys$/, (req, res) => {
    assert.equal(req.headers["x-api-key"], "admin-key");
    json(res, 201, { id: "ak_1", api_key: "nxk_new" });
  });
  const created = await client().request<{ api_key: string }>("POST", "/v1/admin/api-keys", { apiKey: "admin-key", body: { name: "x", workspaces: ["ws"] } });
  assert.equal(created.api_key, "nxk_new");
});

test("backoff is exponential with full jitter, capped, never before Retry-After, and only for transient errors of idempotent calls", async () => {
  const { retryDelay } = await import("../src/client.js");
  const { AttentionRequiredError: Attention, NetworkError: Network, NotFoundError: NotFound, RateLimitedError: Limited, RequestError: Request, UnavailableError: Unavailable } = await import("../src/errors.js");
  const retry = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 10_000 };
  const unavailable = new Unavailable("x", 503, "refresh_unavailable", undefined, undefined);
  // Full jitter: a random wait in [0, min(max, base * 2^(n-1))).
  assert.equal(retryDelay(unavailable, 1, true, retry, () => 0.999), 99.9);
  assert.equal(retryDelay(unavailable, 2, true, retry, () => 0.5), 100);
  assert.equal(retryDelay(unavailable, 3, true, retry, () => 1), 400);
  assert.equal(retryDelay(unavailable, 4, true, retry, () => 1), 800);
  assert.equal(retryDelay(new Network("x"), 4, true, { ...retry, maxAttempts: 9 }, () => 1), 800);
  assert.equal(retryDelay(unavailable, 4, true, { ...retry, maxAttempts: 9, maxDelayMs: 500 }, () => 1), 500);
  assert.equal(retryDelay(unavailable, 1, true, retry, () => 0), 0);
  // Retry-After is a floor; one longer than maxRetryAfterMs is not waited for.
  assert.equal(retryDelay(new Limited("x", 429, "rate_limited", undefined, 3), 1, true, retry, () => 1), 3_000);
  assert.equal(retryDelay(new Limited("x", 429, "rate_limited", undefined, 11), 1, true, retry, () => 1), undefined);
  // The last attempt, a non-idempotent call, and errors that are not transient: thrown at once.
  assert.equal(retryDelay(unavailable, 5, true, retry, () => 1), undefined);
  assert.equal(retryDelay(unavailable, 1, false, retry, () => 1), undefined);
  assert.equal(retryDelay(new Attention("x", 409, "connection_not_active", undefined, "c", "invalid_grant"), 1, true, retry, () => 1), undefined);
  assert.equal(retryDelay(new NotFound("x", 404, "not_found"), 1, true, retry, () => 1), undefined);
  // A 500 is a RequestError: internal_error is a bug, not a passing state. 502, 503 and 504 are retried.
  assert.equal(retryDelay(new Request("x", 500, "internal_error"), 1, true, retry, () => 1), undefined);
  assert.equal(retryDelay(new Unavailable("x", 502, "upstream_unreachable", undefined, undefined), 1, true, retry, () => 1), 100);
  assert.equal(retryDelay(new Unavailable("x", 504, "upstream_timeout", undefined, undefined), 1, true, retry, () => 1), 100);
});

test("while Nexus is unavailable, cached credentials due for a fetch but not expired are still served; expired ones are not", async () => {
  const id = newId();
  let now = 1_700_000_000_000;
  const expiresAt = now / 1000 + 600;
  let down = false;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => {
    if (down) problem(res, 503, "database_unavailable", {}, { "Retry-After": "0" });
    else json(res, 200, bearerToken("tok-1", expiresAt));
  });
  const nexus = client({ now: () => now, retry: { maxAttempts: 1 } });
  await nexus.getCredentials(id);
  down = true;
  now = expiresAt * 1000 - 30_000; // within the margin: due for a fetch, still valid
  assert.equal((await nexus.getCredentials(id)).accessToken, "tok-1");
  assert.equal(server.count(`GET /v1/token/${id}`), 2);
  assert.equal((await nexus.getCredentials(id)).accessToken, "tok-1"); // served for a few seconds without asking
  assert.equal(server.count(`GET /v1/token/${id}`), 2);
  now = expiresAt * 1000 + 1; // expired: the error surfaces
  await assert.rejects(nexus.getCredentials(id), UnavailableError);
});

test("a 500 is never masked by cached credentials", async () => {
  const id = newId();
  let now = 1_700_000_000_000;
  const expiresAt = now / 1000 + 600;
  let broken = false;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => {
    if (broken) problem(res, 500, "internal_error");
    else json(res, 200, bearerToken("tok-1", expiresAt));
  });
  const nexus = client({ now: () => now });
  await nexus.getCredentials(id);
  broken = true;
  now = expiresAt * 1000 - 30_000; // due for a fetch, still valid: a 503 would serve tok-1 (the test above)
  const error = await nexus.getCredentials(id).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof RequestError, String(error));
  assert.equal(error.status, 500);
  assert.equal(error.code, "internal_error");
  assert.equal(server.count(`GET /v1/token/${id}`), 2); // asked once, not retried
});

test("attention_required is never masked by cached credentials", async () => {
  const id = newId();
  let now = 1_700_000_000_000;
  const expiresAt = now / 1000 + 600;
  let revoked = false;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => {
    if (revoked) notActive(res, id, "attention_required", "invalid_grant");
    else json(res, 200, bearerToken("tok-1", expiresAt));
  });
  const nexus = client({ now: () => now });
  await nexus.getCredentials(id);
  revoked = true;
  now = expiresAt * 1000 - 30_000;
  await assert.rejects(nexus.getCredentials(id), AttentionRequiredError);
});

test("only transient Nexus codes of a 502/503/504 are retried, through the API and the Bridge", async () => {
  const cases: [number, string, number][] = [
    [502, "token_request_failed", 1], [502, "redirect_refused", 1], [502, "aws_assume_role_failed", 1],
    [502, "upstream_unreachable", 3], [504, "upstream_timeout", 3], [503, "database_unavailable", 3],
    [503, "refresh_unavailable", 3], [503, "aws_sts_throttled", 3], [502, "", 3],
  ];
  for (const [status, code, attempts] of cases) {
    const id = newId();
    const answer = (_req: unknown, res: import("node:http").ServerResponse) => {
      if (code === "") {
        res.writeHead(status, { "content-type": "text/html" });
        res.end("<html>Bad Gateway</html>"); // a proxy's 502: no Nexus code
      } else {
        problem(res, status, code);
      }
    };
    server.on("GET", new RegExp(`^/v1/token/${id}$`), answer);
    server.on("GET", new RegExp(`^/v1/bridge/${id}/`), answer);
    const error = await client().getCredentials(id).catch((e) => e);
    assert.ok(error instanceof UnavailableError, `${status} ${code}`);
    assert.equal(error.code, code);
    assert.equal(server.count(`GET /v1/token/${id}`), attempts, `${status} ${code}`);
    if (code !== "") { // a provider's own 502 through the Bridge passes through, never retried
      const bridged = await client().fetch(id, { bridge: true })("/item").catch((e) => e);
      assert.ok(bridged instanceof UnavailableError, `Bridge ${status} ${code}`);
      assert.equal(server.count(`GET /v1/bridge/${id}/item`), attempts, `Bridge ${status} ${code}`);
    }
  }
});

test("a DELETE retried after a 502 is done when the retry finds it gone; a first 404 is still NotFoundError", async () => {
  const id = newId();
  let calls = 0;
  server.on("DELETE", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    calls++;
    if (calls === 1) {
      res.writeHead(502, { "content-type": "text/html" }); // the delete happened; a proxy lost the answer
      res.end("<html>Bad Gateway</html>");
    } else {
      problem(res, 404, "not_found");
    }
  });
  await client().deleteConnection(id);
  assert.equal(calls, 2);
  await assert.rejects(client().deleteConnection(id), NotFoundError);
  assert.equal(calls, 3);
});

test("attention_required is a kind of NotActiveError (status attention_required), as in the Go and Python SDKs", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => notActive(res, id, "attention_required", "invalid_grant"));
  const error = await client().getCredentials(id).catch((e) => e);
  assert.ok(error instanceof AttentionRequiredError);
  assert.ok(error instanceof NotActiveError);
  assert.equal(error.connectionStatus, "attention_required");
  assert.equal(error.reason, "invalid_grant");
  assert.equal(error.name, "AttentionRequiredError");
});
