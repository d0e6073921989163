// A machine-to-machine MCP server's connection (client_credentials, docs/remote-mcp.md) needs nobody's consent: Nexus
// answers request-connection 201 and reconnect 200 with {connection_id, status: "active"} and no auth_url (its JSON
// leaves a null out). The SDK's result has no authUrl and status "active".
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Nexus, UnavailableError } from "../src/index.js";
import { TestServer, json, problem } from "./server.js";

const KEY = "nxk_test_api_key_SECRET";
let server: TestServer;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
});

const client = () => new Nexus({ baseUrl: server.url, apiKey: KEY, retry: { baseDelayMs: 1, maxDelayMs: 5 } });
const input = (workspaceId: string, provider: string) => ({ workspaceId, provider, returnUrl: "https://app.example/return" });

test("requesting a machine connection gives its id, status active and no authUrl", async () => {
  // What Nexus sends (MachineConnectionResponse, nulls not written).
  server.on("POST", /^\/v1\/request-connection$/, (_req, res) => json(res, 201, { connection_id: "conn_m2m", status: "active" }));
  const requested = await client().requestConnection(input("ws_m2m", "reports"));
  assert.equal(requested.authUrl, undefined);
  assert.equal(requested.status, "active");
  assert.deepEqual(requested, { connectionId: "conn_m2m", status: "active" }); // no authUrl key at all
});

test("reconnecting a machine connection keeps its id and gives status active without authUrl", async () => {
  let body = "";
  server.on("POST", /^\/v1\/connections\/conn_m2m\/reconnect$/, (req, res) => {
    body = req.body.toString();
    // The same answer with the null written is read the same way.
    json(res, 200, { auth_url: null, connection_id: "conn_m2m", status: "active" });
  });
  const again = await client().reconnect("conn_m2m", { scopes: ["reports:read"] });
  assert.deepEqual(again, { connectionId: "conn_m2m", status: "active" });
  assert.deepEqual(JSON.parse(body), { scopes: ["reports:read"] });
});

test("a consent answer still gives exactly authUrl and connectionId", async () => {
  server.on("POST", /^\/v1\/connections\/conn_consent\/reconnect$/, (_req, res) =>
    json(res, 200, { auth_url: "https://idp.example/authorize?state=s", connection_id: "conn_consent" }));
  assert.deepEqual(await client().reconnect("conn_consent"), { authUrl: "https://idp.example/authorize?state=s", connectionId: "conn_consent" });
});

test("a refused machine connection is an UnavailableError with the connection id, sent once", async () => {
  server.on("POST", /^\/v1\/connections\/conn_refused\/reconnect$/, (_req, res) =>
    problem(res, 502, "token_request_failed", { connection_id: "conn_refused", connection_status: "failed" }));
  await assert.rejects(client().reconnect("conn_refused"), (error: unknown) => {
    assert.ok(error instanceof UnavailableError);
    assert.equal(error.code, "token_request_failed");
    assert.equal(error.problem?.["connection_id"], "conn_refused");
    return true;
  });
  assert.equal(server.count("POST /v1/connections/conn_refused/reconnect"), 1);
});
