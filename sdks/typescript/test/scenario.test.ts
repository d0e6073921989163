// The SDK scenario (sdks/scenario.json, vocabulary in sdks/scenario/README.md) against a real Nexus and the
// scenario upstream that sdks/scenario/run.sh starts. Each step is one test, named by its id; runs only when
// NEXUS_SCENARIO is set: `../scenario/run.sh node --test build/test/scenario.test.js`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  AttentionRequiredError,
  ForbiddenError,
  Nexus,
  NexusError,
  NotActiveError,
  NotFoundError,
  RateLimitedError,
  UnavailableError,
  type Connection,
  type Credentials,
} from "../src/index.js";

interface Provider {
  name: string;
  strategy: string;
  principal: string;
  registration: Record<string, unknown> & { api_base_url?: string };
  credentials?: Record<string, string>;
}
interface Step {
  id: string;
  op: string;
  provider?: string;
  connection?: string;
  connections?: string[];
  scopes?: string[];
  save_as?: string;
  timeout_seconds?: number;
  via?: "direct" | "bridge" | "unauthenticated";
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  action?: string;
  status?: string;
  page_size?: number;
  connection_config?: Record<string, string>;
  expect?: Record<string, unknown>;
}
interface Scenario {
  workspace_id: string;
  api_key: Record<string, unknown>;
  return_url: string;
  providers: Provider[];
  steps: Step[];
}

const scenarioPath = process.env["NEXUS_SCENARIO"];
const nexusUrl = process.env["NEXUS_URL"] ?? "";
const adminKey = process.env["NEXUS_ADMIN_API_KEY"] ?? "";
const upstream = process.env["NEXUS_SCENARIO_UPSTREAM"] ?? "";

const scenario: Scenario | undefined = scenarioPath
  ? JSON.parse(readFileSync(scenarioPath, "utf8").replaceAll("{nexus}", nexusUrl).replaceAll("{upstream}", upstream))
  : undefined;

/** State carried from step to step. */
let nexus: Nexus | undefined;
const connections = new Map<string, { id: string; provider: Provider }>();
const captured = new Map<string, Record<string, string>>();
let earlierFailure: string | undefined;

function provider(name: string | undefined): Provider {
  const found = scenario!.providers.find((p) => p.name === name);
  assert.ok(found, `no provider named ${name}`);
  return found;
}

function saved(name: string | undefined): { id: string; provider: Provider } {
  const found = name ? connections.get(name) : undefined;
  assert.ok(found, `no connection saved as ${name}`);
  return found;
}

function sdk(): Nexus {
  assert.ok(nexus, "create_api_key has not run");
  return nexus;
}

/** Objects compared key by key, recursively; other values equal. */
function assertSubset(actual: unknown, expected: unknown, where = "$"): void {
  if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    assert.ok(actual !== null && typeof actual === "object", `${where}: expected an object, got ${JSON.stringify(actual)}`);
    for (const [key, value] of Object.entries(expected)) {
      assertSubset((actual as Record<string, unknown>)[key], value, `${where}.${key}`);
    }
    return;
  }
  assert.deepEqual(actual, expected, `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** Runs `action` and checks that it throws the typed error `expect.error` names. */
async function expectError(action: () => Promise<unknown>, expect: Record<string, unknown>, connectionId: string): Promise<void> {
  let error: unknown;
  try {
    await action();
  } catch (caught) {
    error = caught;
  }
  assert.ok(error !== undefined, `expected the typed error ${String(expect["error"])}, but the call succeeded`);
  assert.ok(error instanceof NexusError, `expected a NexusError, got ${String(error)}`);
  switch (expect["error"]) {
    case "attention_required":
      assert.ok(error instanceof AttentionRequiredError, `expected AttentionRequiredError, got ${error.name}: ${error.message}`);
      assert.equal(error.connectionId, connectionId);
      if (expect["reason"] !== undefined) assert.equal(error.reason, expect["reason"]);
      break;
    case "not_active":
      assert.ok(error instanceof NotActiveError && !(error instanceof AttentionRequiredError), `expected NotActiveError, got ${error.name}: ${error.message}`);
      if (expect["status"] !== undefined) assert.equal(error.connectionStatus, expect["status"]);
      break;
    case "not_found":
      assert.ok(error instanceof NotFoundError, `expected NotFoundError, got ${error.name}: ${error.message}`);
      break;
    case "forbidden":
      assert.ok(error instanceof ForbiddenError, `expected ForbiddenError, got ${error.name}`);
      break;
    case "rate_limited":
      assert.ok(error instanceof RateLimitedError, `expected RateLimitedError, got ${error.name}`);
      break;
    case "unavailable":
      assert.ok(error instanceof UnavailableError, `expected UnavailableError, got ${error.name}`);
      break;
    default:
      assert.fail(`unknown expect.error ${String(expect["error"])}`);
  }
}

async function adminPost(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(nexusUrl + path, {
    method: "POST",
    headers: { "X-API-Key": adminKey, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : {} };
}

async function stats(): Promise<{ refreshes: number }> {
  const response = await fetch(`${upstream}/control/stats`);
  assert.equal(response.status, 200);
  return (await response.json()) as { refreshes: number };
}

async function requestConnection(step: Step, p: Provider): Promise<string> {
  const requested = await sdk().requestConnection({
    workspaceId: scenario!.workspace_id,
    provider: p.name,
    returnUrl: scenario!.return_url,
    ...(step.scopes ? { scopes: step.scopes } : {}),
  });
  assert.ok(requested.connectionId, "no connection_id");
  assert.ok(requested.authUrl, "no auth_url");
  return requested.connectionId;
}

const ops: Record<string, (step: Step) => Promise<void>> = {
  async create_api_key() {
    const { status, json } = await adminPost("/v1/admin/api-keys", scenario!.api_key);
    assert.equal(status, 201);
    assert.equal(typeof json["api_key"], "string");
    nexus = new Nexus({ baseUrl: nexusUrl, apiKey: json["api_key"] as string, timeoutMs: 30_000 });
  },

  async register_providers() {
    for (const p of scenario!.providers) {
      const { status, json } = await adminPost("/v1/providers", p.registration);
      assert.equal(status, 201, `${p.name}: ${JSON.stringify(json)}`);
    }
  },

  async request_connection(step) {
    const p = provider(step.provider);
    const requested = await sdk().requestConnection({
      workspaceId: scenario!.workspace_id,
      provider: p.name,
      returnUrl: scenario!.return_url,
      ...(step.scopes ? { scopes: step.scopes } : {}),
      ...(step.connection_config ? { connectionConfig: step.connection_config } : {}),
    });
    assert.ok(requested.connectionId.length > 0);
    assert.ok(requested.authUrl, "no auth_url");
    const prefix = step.expect?.["auth_url_prefix"];
    if (typeof prefix === "string") {
      assert.ok(requested.authUrl.startsWith(prefix), `${requested.authUrl} does not start with ${prefix}`);
    }
    connections.set(step.save_as!, { id: requested.connectionId, provider: p });
    authUrls.set(step.save_as!, requested.authUrl);
  },

  async get_connection(step) {
    const { id } = saved(step.connection);
    if (step.expect?.["error"]) {
      await expectError(() => sdk().getConnection(id), step.expect, id);
      return;
    }
    const connection = await sdk().getConnection(id);
    assert.equal(connection.connectionId, id);
    if (step.expect?.["status"] !== undefined) assert.equal(connection.status, step.expect["status"]);
    // expect.health (sdks/scenario/README.md) against the SDK's Connection.
    for (const [key, want] of Object.entries((step.expect?.["health"] as Record<string, unknown>) ?? {})) {
      switch (key) {
        case "granted_scopes":
          assert.deepEqual(connection.grantedScopes, want);
          break;
        case "consecutive_failures":
          assert.equal(connection.consecutiveFailures, want);
          break;
        case "last_error":
          assert.equal(want, null);
          assert.equal(connection.lastError, null);
          break;
        case "last_refreshed":
          assert.equal(connection.lastRefreshedAt !== null, want, `lastRefreshedAt ${connection.lastRefreshedAt}`);
          break;
        case "reconnecting":
          assert.equal(connection.reconnecting, want);
          break;
        case "connection_config":
          assert.deepEqual(connection.connectionConfig, want);
          break;
        default:
          assert.fail(`unknown health key ${key}`);
      }
    }
  },

  async reconnect(step) {
    const { id } = saved(step.connection);
    const again = await sdk().reconnect(id, step.scopes ? { scopes: step.scopes } : {});
    assert.equal(again.connectionId, id, "a reconnect keeps the connection id");
    const prefix = step.expect?.["auth_url_prefix"] as string;
    assert.ok(again.authUrl, "no auth_url");
    assert.ok(again.authUrl.startsWith(prefix), `${again.authUrl} does not start with ${prefix}`);
    authUrls.set(step.connection!, again.authUrl);
  },

  async complete_consent(step) {
    const authUrl = authUrls.get(step.connection!);
    assert.ok(authUrl, "no auth_url for this connection");
    const consent = await fetch(authUrl, { redirect: "manual" });
    assert.equal(consent.status, 302, `the upstream answered ${consent.status}`);
    const callback = consent.headers.get("location");
    assert.ok(callback && callback.includes("/auth/callback?"), `unexpected Location ${callback}`);
    const back = await fetch(new URL(callback, authUrl), { redirect: "manual" });
    assert.equal(back.status, 302, `Nexus's callback answered ${back.status}: ${await back.text()}`);
    const returned = new URL(back.headers.get("location")!, nexusUrl);
    assert.ok(returned.href.startsWith(scenario!.return_url), `returned to ${returned.href}`);
    assert.equal(returned.searchParams.get("connection_id"), saved(step.connection).id);
    assert.equal(returned.searchParams.get("status"), step.expect?.["return_status"]);
  },

  async wait_until_active(step) {
    const { id } = saved(step.connection);
    const connection = await sdk().waitUntilActive(id, { timeoutMs: (step.timeout_seconds ?? 30) * 1000 });
    assert.equal(connection.status, "active");
  },

  async capture_credentials(step) {
    const p = provider(step.provider);
    const id = await requestConnection({ ...step, scopes: undefined } as Step, p);
    const connection = await sdk().submitCredentials(id, p.credentials!);
    assert.equal(connection.status, "active");
    connections.set(step.save_as!, { id, provider: p });
    captured.set(step.save_as!, p.credentials!);
  },

  async list_connections(step) {
    const listed: Connection[] = [];
    const filters = { workspaceId: scenario!.workspace_id, provider: step.provider, status: step.status, limit: step.page_size };
    for await (const c of sdk().connections(filters)) {
      assert.ok(!listed.some((l) => l.connectionId === c.connectionId), `${c.connectionId} listed twice`);
      listed.push(c);
    }
    for (const name of (step.expect?.["excludes"] as string[]) ?? []) {
      assert.ok(!listed.some((c) => c.connectionId === saved(name).id), `${name} is listed`);
    }
    if (step.expect?.["count"] !== undefined) assert.equal(listed.length, step.expect["count"]);
    for (const name of (step.expect?.["includes"] as string[]) ?? []) {
      const { id } = saved(name);
      const found = listed.find((c) => c.connectionId === id);
      assert.ok(found, `${name} (${id}) is not listed`);
      if (step.expect?.["status"] !== undefined) assert.equal(found.status, step.expect["status"]);
    }
  },

  async get_credentials(step) {
    const { id } = saved(step.connection);
    const expect = step.expect ?? {};
    if (expect["error"]) {
      await expectError(() => sdk().getCredentials(id), expect, id);
      return;
    }
    const credentials: Credentials = await sdk().getCredentials(id);
    const strategy = { ...credentials.strategy, role_arn: credentials.strategy.roleArn };
    assertSubset(strategy, expect["strategy"] ?? {});
    for (const field of (expect["credential_fields"] as string[]) ?? []) {
      assert.ok((credentials.value(field) ?? "").length > 0, `credential field ${field} is missing or empty`);
    }
    if (expect["credentials_equal_captured"]) {
      const sent = captured.get(step.connection!)!;
      assert.deepEqual(credentials.fields().sort(), Object.keys(sent).sort());
      for (const [field, value] of Object.entries(sent)) {
        assert.ok(credentials.value(field) === value, `credential field ${field} differs from what was captured`);
      }
    }
    if (expect["expires_in_future"]) {
      assert.ok(credentials.expiresAt !== null && credentials.expiresAt > Date.now() / 1000, `expires_at ${credentials.expiresAt} is not in the future`);
    }
  },

  async call(step) {
    const { id, provider: p } = saved(step.connection);
    const init: RequestInit = { method: step.method ?? "GET" };
    if (step.headers) init.headers = step.headers;
    if (step.body !== undefined) init.body = step.body;
    const before = step.expect?.["refreshed_once"] ? await stats() : undefined;
    const send = (): Promise<Response> => {
      switch (step.via) {
        case "direct":
          return sdk().fetch(id)(p.registration.api_base_url + step.path!, init);
        case "bridge":
          return sdk().fetch(id, { bridge: true })(step.path!, init);
        case "unauthenticated":
          return fetch(p.registration.api_base_url + step.path!, init);
        default:
          assert.fail(`unknown via ${step.via}`);
      }
    };
    if (step.expect?.["error"]) {
      // expect.error: the call fails with the SDK's typed error (the fetch hook throws it).
      await expectError(send, step.expect, id);
      return;
    }
    const response = await send();
    const text = await response.text();
    assert.equal(response.status, step.expect?.["status"], `status ${response.status}: ${text}`);
    if (step.expect?.["json"] !== undefined) {
      assertSubset(JSON.parse(text), step.expect["json"]);
    }
    if (before) {
      const after = await stats();
      assert.equal(after.refreshes - before.refreshes, 1, "the upstream did not see exactly one refresh");
    }
  },

  async upstream_control(step) {
    const path = { revoke_all_grants: "/control/revoke-all-grants", expire_access_tokens: "/control/expire-access-tokens" }[step.action ?? ""];
    assert.ok(path, `unknown action ${step.action}`);
    const response = await fetch(upstream + path, { method: "POST" });
    assert.equal(response.status, 200);
  },

  async force_refresh(step) {
    const { id } = saved(step.connection);
    if (step.expect?.["error"]) {
      await expectError(() => sdk().refresh(id), step.expect, id);
    } else {
      await sdk().refresh(id);
    }
  },

  async delete_connection(step) {
    const names = step.connections ?? [step.connection!];
    for (const name of names) {
      await sdk().deleteConnection(saved(name).id);
    }
  },
};

const authUrls = new Map<string, string>();

if (!scenario) {
  test("scenario (sdks/scenario.json against a real Nexus)", { skip: "NEXUS_SCENARIO is not set: run it through ../scenario/run.sh" }, () => undefined);
} else {
  for (const step of scenario.steps) {
    test(`scenario step ${step.id} (${step.op})`, async (t) => {
      if (earlierFailure) {
        t.skip(`an earlier step failed: ${earlierFailure}`);
        return;
      }
      const op = ops[step.op];
      try {
        assert.ok(op, `unknown op ${step.op}`);
        await op(step);
      } catch (error) {
        earlierFailure = step.id;
        throw error;
      }
    });
  }
}
