// The cases the four SDKs classify alike (the README's "Same answer, same error" table); each test has the same
// sentence as its name in the Go, Python and .NET suites.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { AttentionRequiredError, Nexus, NetworkError, NotActiveError, RateLimitedError, RequestError, TimeoutError, UnavailableError } from "../src/index.js";
import { TestServer, bearerToken, connection, json, problem, type Handler } from "./server.js";

const KEY = "nxk_agreement_test_key";
let server: TestServer;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
});

let counter = 0;
const newId = () => `conn_a${++counter}_${Math.random().toString(36).slice(2, 8)}`;

/** A client whose clock moves 1 s each time it is read; no retries inside one call (each poll is one GET). */
function client(): Nexus {
  let now = 1_000_000;
  return new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { maxAttempts: 1, baseDelayMs: 1 }, now: () => (now += 1_000) });
}

test("aws_sts_throttled is unavailable, not rate limited, and carries Retry-After", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => problem(res, 503, "aws_sts_throttled", { retry_after: 5 }, { "Retry-After": "5" }));
  const error = await client().getCredentials(id).catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.ok(!(error instanceof RateLimitedError));
  assert.equal(error.status, 503);
  assert.equal(error.code, "aws_sts_throttled");
  assert.equal(error.retryAfter, 5);
});

test("connection_failed is not active with status failed and the connection id", async () => {
  const id = newId();
  // What Nexus sends: the catalog's problem, with RFC 9457's numeric status and no connection id.
  server.on("POST", new RegExp(`^/v1/connections/${id}/credentials$`), (_req, res) => problem(res, 409, "connection_failed"));
  const error = await client().submitCredentials(id, { api_key: "k" }).catch((e) => e);
  assert.ok(error instanceof NotActiveError, String(error));
  assert.ok(!(error instanceof AttentionRequiredError));
  assert.ok(!(error instanceof RequestError));
  assert.equal(error.connectionStatus, "failed");
  assert.equal(error.connectionId, id);
  assert.equal(error.code, "connection_failed");
  assert.equal(error.status, 409);
  assert.match(error.message, new RegExp(`${id} is failed`));
});

test("a provider 401 whose forced refresh is unavailable fails with the unavailable error", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, bearerToken("tok-1", null)));
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => problem(res, 503, "refresh_unavailable", { connection_id: id }, { "Retry-After": "7" }));
  let hits = 0;
  server.on("GET", new RegExp(`^/api/${id}/`), (_req, res) => {
    hits++;
    json(res, 401, { error: "invalid_token" });
  });
  const error = await client().fetch(id)(`${server.url}/api/${id}/x`).catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.equal(error.code, "refresh_unavailable");
  assert.equal(error.retryAfter, 7);
  assert.equal(hits, 1);
  assert.equal(server.count(`POST /v1/refresh/${id}`), 1);
});

test("a provider 401 on a connection with nothing to refresh returns the provider's 401", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, bearerToken("tok-1", null)));
  server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => problem(res, 409, "refresh_not_supported", { connection_id: id, status: "active" }));
  let hits = 0;
  server.on("GET", new RegExp(`^/api/${id}/`), (_req, res) => {
    hits++;
    json(res, 401, { error: "invalid_token" });
  });
  const response = await client().fetch(id)(`${server.url}/api/${id}/x`);
  assert.equal(response.status, 401);
  assert.equal(server.count(`POST /v1/refresh/${id}`), 1);
  // No read after the refusal, and no second request.
  assert.equal(server.count(`GET /v1/token/${id}`), 1);
  assert.equal(hits, 1);
});

test("a provider 401 is not retried when Nexus hands back the same credential", async () => {
  // An OAuth 2.0 token that the forced refresh left as it was, and an API key that was not captured anew.
  for (const [strategy, token, refreshes] of [
    ["oauth2", bearerToken("tok-same", null), 1],
    ["api_key", { strategy: { type: "api_key", in: "header", name: "X-Key", prefix: null }, credentials: { api_key: "k-same" }, expires_at: null }, 0],
  ] as const) {
    const id = newId();
    server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, token));
    server.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => json(res, 200, connection(id, "active")));
    let hits = 0;
    server.on("GET", new RegExp(`^/api/${id}/`), (_req, res) => {
      hits++;
      json(res, 401, { error: "invalid_token" });
    });
    const response = await client().fetch(id)(`${server.url}/api/${id}/x`);
    assert.equal(response.status, 401, strategy);
    assert.equal(hits, 1, strategy);
    assert.equal(server.count(`GET /v1/token/${id}`), 2, strategy);
    assert.equal(server.count(`POST /v1/refresh/${id}`), refreshes, strategy);
  }
});

test("wait until active keeps polling through a transient error until the connection is active", async () => {
  const id = newId();
  let polls = 0;
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    polls++;
    if (polls === 1) problem(res, 503, "database_unavailable", {}, { "Retry-After": "0" });
    else if (polls === 2) problem(res, 429, "rate_limited");
    else json(res, 200, connection(id, "active"));
  });
  const active = await client().waitUntilActive(id, { timeoutMs: 60_000, intervalMs: 1 });
  assert.equal(active.status, "active");
  assert.equal(polls, 3);
});

test("wait until active raises the last transient error when the deadline passes", async () => {
  const id = newId();
  let polls = 0;
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    polls++;
    problem(res, 503, "database_unavailable", {}, { "Retry-After": "0" });
  });
  // The clock moves 1 s a read: a 4.5 s wait ends after a few polls.
  const error = await client().waitUntilActive(id, { timeoutMs: 4_500, intervalMs: 1 }).catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.ok(!(error instanceof TimeoutError));
  assert.equal(error.code, "database_unavailable");
  assert.ok(polls >= 2, `gave up after ${polls} polls`);
});

test("wait until active ends at once when a poll is answered with a 500", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => problem(res, 500, "internal_error"));
  // 10 s to wait (the clock moves 1 s a read): polling through the 500 would show as about 10 polls.
  const error = await client().waitUntilActive(id, { timeoutMs: 10_000, intervalMs: 1 }).catch((e) => e);
  assert.ok(error instanceof RequestError, String(error)); // the generic error, as Go's *APIError and .NET's NexusException
  assert.ok(!(error instanceof UnavailableError));
  assert.ok(!(error instanceof TimeoutError));
  assert.equal(error.status, 500);
  assert.equal(error.code, "internal_error");
  assert.equal(server.count(`GET /v1/connections/${id}`), 1);
});

test("wait until active ends at once when a poll is answered with a 502 of a permanent code", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => problem(res, 502, "token_request_failed", {}, { "Retry-After": "0" }));
  // 10 s to wait (the clock moves 1 s a read): polling through the refusal would show as about 10 polls.
  const error = await client().waitUntilActive(id, { timeoutMs: 10_000, intervalMs: 1 }).catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.ok(!(error instanceof TimeoutError));
  assert.equal(error.status, 502);
  assert.equal(error.code, "token_request_failed");
  assert.equal(server.count(`GET /v1/connections/${id}`), 1);
});

test("wait until active keeps polling through a 502 without a code or with a transient one and through reconnecting", async () => {
  const id = newId();
  let polls = 0;
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    polls++;
    if (polls === 1) problem(res, 502, "upstream_unreachable", {}, { "Retry-After": "0" });
    else if (polls === 2) {
      res.writeHead(502, { "content-type": "text/html" });
      res.end("<html>Bad Gateway</html>");
    } else if (polls === 3) problem(res, 504, "upstream_timeout");
    else if (polls === 4) json(res, 200, connection(id, "active", { reconnecting: true }));
    else json(res, 200, connection(id, "active"));
  });
  const active = await client().waitUntilActive(id, { timeoutMs: 60_000, intervalMs: 1 });
  assert.equal(active.status, "active");
  assert.equal(active.reconnecting, false);
  assert.equal(polls, 5);
});

test("a transient Nexus problem through the Bridge is retried for an idempotent method but not for a POST, a provider's 503 or a long Retry-After", async () => {
  const id = newId();
  // Nexus's Bridge: /flaky answers 429 (Nexus's rate limit), then 503 database_unavailable, then the provider's 200;
  // /refused and /later always answer 503 refresh_unavailable (Retry-After 0 and 3600); /provider is the provider's
  // own 503 problem, which the Bridge passes on.
  const seen: { path: string; body: string }[] = [];
  const sent = (name: string) => seen.filter((r) => r.path.endsWith(`/${name}`)).length;
  server.on("PUT", new RegExp(`^/v1/bridge/${id}/`), (req, res) => {
    seen.push({ path: req.path, body: req.body.toString() });
    const n = sent("flaky");
    if (n === 1) problem(res, 429, "rate_limited", {}, { "Retry-After": "0" });
    else if (n === 2) problem(res, 503, "database_unavailable", {}, { "Retry-After": "0" });
    else json(res, 200, {});
  });
  for (const method of ["GET", "POST"]) {
    server.on(method, new RegExp(`^/v1/bridge/${id}/`), (req, res) => {
      seen.push({ path: req.path, body: req.body.toString() });
      if (req.path.endsWith("/provider")) {
        res.writeHead(503, { "content-type": "application/problem+json", "Retry-After": "0" });
        res.end(JSON.stringify({ type: "https://api.provider.test/problems/maintenance", title: "t", status: 503 }));
      } else {
        problem(res, 503, "refresh_unavailable", {}, { "Retry-After": req.path.endsWith("/later") ? "3600" : "0" });
      }
    });
  }
  const call = new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { baseDelayMs: 1 } }).fetch(id, { bridge: true });

  const flaky = await call("/flaky", { method: "PUT", body: JSON.stringify({ a: 1 }) });
  assert.equal(flaky.status, 200);
  assert.equal(sent("flaky"), 3);
  assert.ok(seen.every((r) => r.body === '{"a":1}'), JSON.stringify(seen)); // the body, sent again each time

  const refused = await call("/refused", { method: "POST", body: "{}" }).catch((e) => e);
  assert.ok(refused instanceof UnavailableError, String(refused));
  assert.equal(refused.code, "refresh_unavailable");
  assert.equal(sent("refused"), 1);

  const provider = await call("/provider");
  assert.equal(provider.status, 503);
  assert.match(await provider.text(), /maintenance/);
  assert.equal(sent("provider"), 1);

  const later = await call("/later").catch((e) => e);
  assert.ok(later instanceof UnavailableError, String(later));
  assert.equal(later.retryAfter, 3600);
  assert.equal(sent("later"), 1);
});

test("a 21st redirect through the Bridge is an error as it is directly", async () => {
  const id = newId();
  const elsewhere = await TestServer.start();
  try {
    elsewhere.on("GET", /.*/, (_req, res) => json(res, 200, {}));
    // /v1/bridge/{id}/{chain}/N redirects to .../N+1 on the Bridge: "twenty" up to 20, "endless" always, "leaving" up
    // to 20 and then off the Bridge.
    const seen: string[] = [];
    server.on("GET", new RegExp(`^/v1/bridge/${id}/`), (req, res) => {
      seen.push(req.path);
      const [, chain, hop] = /\/(\w+)\/(\d+)$/.exec(req.path)!;
      const n = Number(hop);
      if (chain === "endless" || n < 20) res.writeHead(302, { location: `/v1/bridge/${id}/${chain}/${n + 1}` }).end();
      else if (chain === "leaving") res.writeHead(302, { location: `${elsewhere.url}/away` }).end();
      else json(res, 200, { hop: n });
    });
    const call = client().fetch(id, { bridge: true });

    assert.deepEqual(await (await call("/twenty/0")).json(), { hop: 20 });
    assert.equal(seen.length, 21);

    const error = await call("/endless/0").catch((e) => e);
    assert.ok(error instanceof TypeError, String(error));
    assert.match(error.message, /Too many redirects \(more than 20\)/);
    assert.equal(seen.length, 42); // /endless/0 and 20 redirects followed; the 21st is not
    assert.equal(seen.at(-1), `/v1/bridge/${id}/endless/20`);

    // Where the Bridge's redirect goes is asked before how many there were: a 21st off the Bridge comes back.
    const leaving = await call("/leaving/0");
    assert.equal(leaving.status, 302);
    assert.equal(leaving.headers.get("location"), `${elsewhere.url}/away`);
    assert.equal(seen.length, 63);
    assert.equal(elsewhere.received.length, 0);
  } finally {
    await elsewhere.close();
  }
});

test("a 21st redirect to another origin comes back as the 3xx, directly", async () => {
  const id = newId();
  const elsewhere = await TestServer.start();
  try {
    elsewhere.on("GET", /.*/, (_req, res) => json(res, 200, {}));
    server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => json(res, 200, bearerToken("tok-1", null)));
    // The provider's /api/{id}/{chain}/N redirects to .../N+1 on its own origin: "twenty" up to 20, "endless" always,
    // "leaving" up to 20 and then to another origin.
    const seen: Array<[string, string | undefined]> = [];
    server.on("GET", new RegExp(`^/api/${id}/`), (req, res) => {
      seen.push([req.path, req.headers.authorization]);
      const [, chain, hop] = /\/(\w+)\/(\d+)$/.exec(req.path)!;
      const n = Number(hop);
      if (chain === "endless" || n < 20) res.writeHead(302, { location: `/api/${id}/${chain}/${n + 1}` }).end();
      else if (chain === "leaving") res.writeHead(302, { location: `${elsewhere.url}/away` }).end();
      else json(res, 200, { hop: n });
    });
    const call = client().fetch(id);

    assert.deepEqual(await (await call(`${server.url}/api/${id}/twenty/0`)).json(), { hop: 20 });
    assert.equal(seen.length, 21);
    assert.ok(seen.every(([, authorization]) => authorization === "Bearer tok-1"));

    const error = await call(`${server.url}/api/${id}/endless/0`).catch((e) => e);
    assert.ok(error instanceof TypeError, String(error));
    assert.match(error.message, /Too many redirects \(more than 20\)/);
    assert.equal(seen.length, 42); // /endless/0 and 20 redirects followed; the 21st is not

    // Where the redirect goes is asked before how many there were: a 21st to another origin comes back, not an error.
    const leaving = await call(`${server.url}/api/${id}/leaving/0`);
    assert.equal(leaving.status, 302);
    assert.equal(leaving.headers.get("location"), `${elsewhere.url}/away`);
    assert.equal(seen.length, 63);
    assert.equal(elsewhere.received.length, 0);
  } finally {
    await elsewhere.close();
  }
});

test("cached credentials that have not expired are served when their fetch fails transiently", async () => {
  // A Nexus of its own, whose every answer closes its connection, so that a hang-up is a failed connection.
  const nexus = await TestServer.start();
  try {
    const failures: [string, (res: Parameters<Handler>[1]) => void][] = [
      ["503 database_unavailable", (res) => problem(res, 503, "database_unavailable", {}, { "Retry-After": "0", connection: "close" })],
      ["a proxy's 502 (no Nexus code)", (res) => {
        res.writeHead(502, { "content-type": "text/html", connection: "close" });
        res.end("<html>Bad Gateway</html>");
      }],
      ["429", (res) => problem(res, 429, "rate_limited", {}, { "Retry-After": "0", connection: "close" })],
      ["no answer", (res) => res.socket?.destroy()],
    ];
    for (const [what, fail] of failures) {
      const id = newId();
      let now = 1_700_000_000_000;
      const expiresAt = now / 1000 + 600;
      let down = false;
      nexus.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) => (down ? fail(res) : json(res, 200, bearerToken("tok-1", expiresAt), { connection: "close" })));
      const client = new Nexus({ baseUrl: nexus.url, apiKey: KEY, retry: { maxAttempts: 1 }, now: () => now });
      await client.getCredentials(id);
      down = true;
      now = expiresAt * 1000 - 30_000; // within the refresh margin: due for a fetch, not expired
      assert.equal((await client.getCredentials(id)).accessToken, "tok-1", what);
      assert.equal(nexus.count(`GET /v1/token/${id}`), 2, what);
      now = expiresAt * 1000 + 1_000; // expired: the failure is thrown
      const error = await client.getCredentials(id).catch((e) => e);
      assert.ok(error instanceof UnavailableError || error instanceof RateLimitedError || error instanceof NetworkError, `${what}: ${String(error)}`);
    }
  } finally {
    await nexus.close();
  }
});

test("cached credentials are not served when their fetch is answered with a 502 of a permanent code", async () => {
  const id = newId();
  let now = 1_700_000_000_000;
  const expiresAt = now / 1000 + 600;
  let refused = false;
  server.on("GET", new RegExp(`^/v1/token/${id}$`), (_req, res) =>
    refused ? problem(res, 502, "token_request_failed") : json(res, 200, bearerToken("tok-1", expiresAt)));
  const client = new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { maxAttempts: 1 }, now: () => now });
  await client.getCredentials(id);
  refused = true;
  now = expiresAt * 1000 - 30_000; // due for a fetch, not expired: a transient failure would serve tok-1 (the test above)
  const error = await client.getCredentials(id).catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.equal(error.status, 502);
  assert.equal(error.code, "token_request_failed");
  assert.equal(server.count(`GET /v1/token/${id}`), 2);
});

test("a problem without a code takes it from its urn:nexus:problem: type", async () => {
  const id = newId();
  const typed = (res: Parameters<Handler>[1], status: number, type: string, extra: Record<string, unknown> = {}) => {
    res.writeHead(status, { "content-type": "application/problem+json" });
    res.end(JSON.stringify({ type, title: "t", status, ...extra }));
  };
  server.on("GET", new RegExp(`^/v1/token/${id}-attention$`), (_req, res) => {
    res.writeHead(409, { "content-type": "application/problem+json" });
    res.end(`{"type":"urn:nexus:problem:connection_not_active","title":"t","status":"attention_required","connection_id":"${id}-attention","error":"invalid_grant"}`);
  });
  server.on("GET", new RegExp(`^/v1/token/${id}-refused$`), (_req, res) => typed(res, 502, "urn:nexus:problem:token_request_failed"));
  server.on("GET", new RegExp(`^/v1/token/${id}-empty$`), (_req, res) => typed(res, 400, "urn:nexus:problem:validation_failed", { code: "" }));
  server.on("GET", new RegExp(`^/v1/token/${id}-both$`), (_req, res) => typed(res, 400, "urn:nexus:problem:validation_failed", { code: "unknown_provider" }));
  server.on("GET", new RegExp(`^/v1/token/${id}-url$`), (_req, res) => typed(res, 400, "https://nexus.test/problems/validation_failed"));
  server.on("GET", new RegExp(`^/v1/token/${id}-blank$`), (_req, res) => typed(res, 400, "about:blank"));
  const nexus = new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { baseDelayMs: 1 } });
  const fails = (suffix: string) => nexus.getCredentials(`${id}-${suffix}`).then(() => assert.fail(suffix), (e: unknown) => e as RequestError);

  const attention = await fails("attention");
  assert.ok(attention instanceof AttentionRequiredError, String(attention));
  assert.equal(attention.code, "connection_not_active");
  assert.equal(attention.reason, "invalid_grant");
  const refused = await fails("refused");
  assert.ok(refused instanceof UnavailableError, String(refused));
  assert.equal(refused.code, "token_request_failed");
  assert.equal(server.count(`GET /v1/token/${id}-refused`), 1); // a refusal: not sent again
  assert.equal((await fails("empty")).code, "validation_failed");
  assert.equal((await fails("both")).code, "unknown_provider"); // the code wins
  assert.equal((await fails("url")).code, ""); // only the URN names a code
  assert.equal((await fails("blank")).code, "");
});

// The retry policy (the README's "Retries"), with the default retry options: each test has the same sentence as its
// name in the Go, Python and .NET suites.

/** A client with the default retry options (3 attempts, 250 ms then 500 ms, Retry-After up to 10 s). */
function defaultRetries(on: TestServer = server, extra: ConstructorParameters<typeof Nexus>[0] = {}): Nexus {
  return new Nexus({ baseUrl: on.url, apiKey: KEY, ...extra });
}

test("a 500 internal_error from Nexus is not retried", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => problem(res, 500, "internal_error"));
  server.on("GET", new RegExp(`^/v1/bridge/${id}/`), (_req, res) => problem(res, 500, "internal_error"));
  const nexus = defaultRetries();

  const error = await nexus.getConnection(id).catch((e) => e);
  assert.ok(error instanceof RequestError, String(error)); // the generic error, as Go's *APIError and .NET's NexusException
  assert.ok(!(error instanceof UnavailableError));
  assert.equal(error.status, 500);
  assert.equal(error.code, "internal_error");
  assert.equal(server.count(`GET /v1/connections/${id}`), 1);
  const bridged = await nexus.fetch(id, { bridge: true })("/item").catch((e) => e);
  assert.ok(bridged instanceof RequestError, String(bridged));
  assert.ok(!(bridged instanceof UnavailableError));
  assert.equal(bridged.status, 500);
  assert.equal(bridged.code, "internal_error");
  assert.equal(server.count(`GET /v1/bridge/${id}/item`), 1);
});

test("a 503 with Retry-After 1 is retried after a second and the second answer wins", async () => {
  const id = newId();
  const times: number[] = [];
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => {
    times.push(performance.now());
    if (times.length === 1) problem(res, 503, "refresh_unavailable", {}, { "Retry-After": "1" });
    else json(res, 200, connection(id, "active"));
  });
  const got = await defaultRetries().getConnection(id);
  assert.equal(got.status, "active");
  assert.equal(times.length, 2);
  assert.ok(times[1]! - times[0]! >= 990, `retried after ${times[1]! - times[0]!} ms`);
});

test("a third transient failure gives up after 3 attempts with the last error", async () => {
  const id = newId();
  // 502, 503, then 504: the last one is the error; no Retry-After, so the backoff (250 ms, then 500 ms, jittered) applies.
  const answer = (res: Parameters<Handler>[1], n: number) => {
    if (n === 1) problem(res, 502, "upstream_unreachable");
    else if (n === 2) problem(res, 503, "database_unavailable");
    else problem(res, 504, "upstream_timeout");
  };
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => answer(res, server.count(`GET /v1/connections/${id}`)));
  server.on("GET", new RegExp(`^/v1/bridge/${id}/`), (_req, res) => answer(res, server.count(`GET /v1/bridge/${id}/item`)));
  const nexus = defaultRetries();

  const error = await nexus.getConnection(id).catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.equal(error.status, 504);
  assert.equal(error.code, "upstream_timeout");
  assert.equal(server.count(`GET /v1/connections/${id}`), 3);
  const bridged = await nexus.fetch(id, { bridge: true })("/item").catch((e) => e);
  assert.ok(bridged instanceof UnavailableError, String(bridged));
  assert.equal(bridged.code, "upstream_timeout");
  assert.equal(server.count(`GET /v1/bridge/${id}/item`), 3);
});

test("a Retry-After of 30 seconds is not waited for: the error comes at once carrying it", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => problem(res, 503, "refresh_unavailable", {}, { "Retry-After": "30" }));
  // Through the Bridge, as an HTTP date.
  server.on("GET", new RegExp(`^/v1/bridge/${id}/`), (_req, res) =>
    problem(res, 429, "rate_limited", {}, { "Retry-After": new Date(Date.now() + 31_000).toUTCString() }));
  const nexus = defaultRetries();
  const start = performance.now();

  const error = await nexus.getConnection(id).catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.equal(error.retryAfter, 30);
  assert.equal(server.count(`GET /v1/connections/${id}`), 1);
  const bridged = await nexus.fetch(id, { bridge: true })("/item").catch((e) => e);
  assert.ok(bridged instanceof RateLimitedError, String(bridged));
  const after = bridged.retryAfter ?? 0;
  assert.ok(after >= 29 && after <= 31, String(after));
  assert.equal(server.count(`GET /v1/bridge/${id}/item`), 1);
  assert.ok(performance.now() - start < 5_000, `waited ${performance.now() - start} ms`);
});

test("a connection that fails before any answer is retried for a GET, through the Bridge too, but not for a POST", async () => {
  // A Nexus of its own, whose every answer closes its connection, so that each request goes on a new one (nothing
  // kept alive from another test); the first request of each kind is hung up on without an answer.
  const nexus = await TestServer.start();
  try {
    const id = newId();
    const hangUp = (res: Parameters<Handler>[1]): void => {
      res.socket?.destroy();
    };
    const close = { connection: "close" };
    nexus.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) =>
      nexus.count(`GET /v1/connections/${id}`) === 1 ? hangUp(res) : json(res, 200, connection(id, "active"), close));
    nexus.on("GET", new RegExp(`^/v1/bridge/${id}/`), (_req, res) =>
      nexus.count(`GET /v1/bridge/${id}/item`) === 1 ? hangUp(res) : json(res, 200, { provider: "answer" }, close));
    nexus.on("POST", new RegExp(`^/v1/refresh/${id}$`), (_req, res) => hangUp(res));
    nexus.on("POST", new RegExp(`^/v1/bridge/${id}/`), (_req, res) => hangUp(res));
    const client = defaultRetries(nexus);

    assert.equal((await client.getConnection(id)).status, "active");
    assert.equal(nexus.count(`GET /v1/connections/${id}`), 2);
    const bridged = await client.fetch(id, { bridge: true })("/item");
    assert.equal(bridged.status, 200);
    assert.deepEqual(await bridged.json(), { provider: "answer" });
    assert.equal(nexus.count(`GET /v1/bridge/${id}/item`), 2);

    await assert.rejects(client.refresh(id), NetworkError);
    assert.equal(nexus.count(`POST /v1/refresh/${id}`), 1);
    await assert.rejects(client.fetch(id, { bridge: true })("/item", { method: "POST", body: "{}" }), TypeError); // fetch's own error
    assert.equal(nexus.count(`POST /v1/bridge/${id}/item`), 1);
  } finally {
    await nexus.close();
  }
});

test("a call that times out is not retried", async () => {
  const id = newId();
  server.on("GET", new RegExp(`^/v1/connections/${id}$`), (_req, res) => new Promise<void>((resolve) => res.on("close", () => resolve()))); // no answer

  // The client's timeout of one call.
  const error = await defaultRetries(server, { timeoutMs: 100 }).getConnection(id).catch((e) => e);
  assert.ok(error instanceof TimeoutError, String(error));
  assert.equal(server.count(`GET /v1/connections/${id}`), 1);
  // The caller's deadline.
  const aborted = await defaultRetries().getConnection(id, { signal: AbortSignal.timeout(100) }).catch((e) => e);
  assert.equal(aborted?.name, "TimeoutError", String(aborted));
  assert.equal(server.count(`GET /v1/connections/${id}`), 2);
});
