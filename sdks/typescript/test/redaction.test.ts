// No secret (API key, token, key, password, AWS secret or session token) in any message, toString, JSON or
// util.inspect output of the client, credentials or errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import util from "node:util";
import { Credentials, EMPTY_PAYLOAD_HASH, Nexus, NexusError, signV4 } from "../src/index.js";
import { TestServer, json, notActive, problem } from "./server.js";

const API_KEY = "nxk_SECRET_API_KEY_0001";
const SECRETS = {
  access: "SECRET_ACCESS_TOKEN_0002",
  apiKey: "SECRET_PROVIDER_KEY_0003",
  password: "SECRET_PASSWORD_0004",
  awsSecret: "SECRET_AWS_SECRET_0005",
  session: "SECRET_SESSION_TOKEN_0006",
};
const ALL = [API_KEY, ...Object.values(SECRETS)];

let server: TestServer;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
});

/** Every way a value is commonly turned into text. */
function renderings(value: unknown): string[] {
  const out = [
    util.inspect(value),
    util.inspect(value, { showHidden: true, getters: true, depth: Infinity }),
    util.format("%s %o %O %j", value, value, value, value),
    String(value),
    JSON.stringify(value) ?? "",
  ];
  if (value instanceof Error) {
    out.push(value.message, value.stack ?? "", util.inspect(value.cause, { showHidden: true, getters: true, depth: Infinity }));
  }
  return out;
}

function assertNoSecret(value: unknown, what: string) {
  for (const text of renderings(value)) {
    for (const secret of ALL) {
      assert.ok(!text.includes(secret), `${what} shows a secret: ${text}`);
    }
  }
}

const responses = {
  oauth2: { strategy: { type: "oauth2" }, credentials: { access_token: SECRETS.access, expires_at: 2000000000 }, expires_at: 2000000000 },
  api_key: { strategy: { type: "api_key", in: "query", name: "key", prefix: "p_" }, credentials: { api_key: SECRETS.apiKey }, expires_at: null },
  basic_auth: { strategy: { type: "basic_auth" }, credentials: { username: "user", password: SECRETS.password }, expires_at: null },
  aws_sigv4: { strategy: { type: "aws_sigv4", region: "eu-west-1", service: "s3" }, credentials: { access_key_id: "AKIA1", secret_access_key: SECRETS.awsSecret, session_token: SECRETS.session }, expires_at: null },
};

test("the client never shows its API key", () => {
  const nexus = new Nexus({ baseUrl: "http://127.0.0.1:9", apiKey: API_KEY });
  assertNoSecret(nexus, "the client");
  assert.match(util.inspect(nexus), /\[redacted\]/);
  assertNoSecret(nexus.fetch("conn_1"), "the fetch hook");
});

test("credentials of every strategy never show their values, yet the getters give them", () => {
  for (const [type, response] of Object.entries(responses)) {
    const credentials = new Credentials("conn_1", response as never);
    assertNoSecret(credentials, `${type} credentials`);
    assertNoSecret(credentials.aws, `${type} aws keys`);
    assertNoSecret(credentials.strategy, `${type} strategy`);
    assert.match(util.inspect(credentials), new RegExp(`Credentials \\{ connectionId: 'conn_1', strategy: '${type}'`));
  }
  assert.equal(new Credentials("c", responses.oauth2 as never).accessToken, SECRETS.access);
  assert.equal(new Credentials("c", responses.aws_sigv4 as never).aws!.sessionToken, SECRETS.session);
});

test("a SigV4 signing result never shows the session token its canonical request holds, yet the fields give it", async () => {
  const signed = await signV4({
    method: "GET", host: "sts.us-east-1.amazonaws.com", path: "/", query: "", headers: [], payloadHash: EMPTY_PAYLOAD_HASH,
    region: "us-east-1", service: "sts", date: new Date(Date.UTC(2026, 2, 14)),
    credentials: { accessKeyId: "AKIA1", secretAccessKey: SECRETS.awsSecret, sessionToken: SECRETS.session },
  });
  assertNoSecret(signed, "the signing result");
  assert.match(util.inspect(signed), /^SigV4Result \{ signedHeaders: 'host;x-amz-date;x-amz-security-token', signature: '[0-9a-f]{64}' \}$/);
  assert.deepEqual(JSON.parse(JSON.stringify(signed)), {
    authorization: signed.authorization, stringToSign: signed.stringToSign, signedHeaders: signed.signedHeaders, signature: signed.signature,
    addedHeaders: signed.addedHeaders.map(([name, value]) => [name, name === "X-Amz-Security-Token" ? "[redacted]" : value]),
  });
  assert.ok(!JSON.stringify(Object.entries({ ...signed })).includes(SECRETS.session), "a spread of the result holds the session token");
  assert.ok(signed.canonicalRequest.includes(SECRETS.session));
  assert.deepEqual(signed.addedHeaders.find(([name]) => name === "X-Amz-Security-Token"), ["X-Amz-Security-Token", SECRETS.session]);
});

test("errors from Nexus never show the API key", async () => {
  server.on("GET", /^\/v1\/token\/c401$/, (_req, res) => problem(res, 401, "unauthorized"));
  server.on("GET", /^\/v1\/token\/c403$/, (_req, res) => problem(res, 403, "credentials_not_readable"));
  server.on("GET", /^\/v1\/token\/c409$/, (_req, res) => notActive(res, "c409", "attention_required", "invalid_grant"));
  server.on("GET", /^\/v1\/token\/c503$/, (_req, res) => problem(res, 503, "refresh_unavailable", {}, { "Retry-After": "999" }));
  server.on("GET", /^\/v1\/token\/cbad$/, (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("not json " + "x");
  });
  const nexus = new Nexus({ baseUrl: server.url, apiKey: API_KEY, retry: { maxAttempts: 1 } });
  for (const id of ["c401", "c403", "c409", "c503", "cbad", "c404"]) {
    const error = await nexus.getCredentials(id).catch((e) => e);
    assert.ok(error instanceof NexusError, `${id}: ${error}`);
    assertNoSecret(error, `the error for ${id}`);
  }
  const closed = await TestServer.start();
  const url = closed.url;
  await closed.close();
  const unreachable = new Nexus({ baseUrl: url, apiKey: API_KEY, retry: { maxAttempts: 1 } });
  assertNoSecret(await unreachable.getConnection("c1").catch((e) => e), "a network error");
  const slow = new Nexus({ baseUrl: server.url, apiKey: API_KEY, timeoutMs: 20, retry: { maxAttempts: 1 } });
  server.on("GET", /^\/v1\/connections\/slow$/, () => undefined);
  assertNoSecret(await slow.getConnection("slow").catch((e) => e), "a timeout");
});

test("a provider that cannot be reached does not surface a query API key in the error", async () => {
  server.on("GET", /^\/v1\/token\/cq$/, (_req, res) => json(res, 200, responses.api_key));
  const closed = await TestServer.start();
  const url = closed.url;
  await closed.close();
  const nexus = new Nexus({ baseUrl: server.url, apiKey: API_KEY });
  const error = await nexus.fetch("cq")(`${url}/resource`).catch((e) => e);
  assert.ok(error instanceof Error);
  assertNoSecret(error, "the provider's network error");
});
