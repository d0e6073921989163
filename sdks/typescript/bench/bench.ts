// Micro-benchmarks: applying a cached credential to a request (target < 50 µs), and a cold credential fetch
// (GET /v1/token) against a loopback server. `npm run bench` prints a Markdown table; `node build/bench/bench.js
// --out FILE` writes it with the machine's details.
import http from "node:http";
import os from "node:os";
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { Nexus, applyCredentials } from "../src/index.js";

const tokens: Record<string, unknown> = {
  oauth2: { strategy: { type: "oauth2" }, credentials: { access_token: "a".repeat(40), expires_at: 4102444800 }, expires_at: 4102444800 },
  api_key_header: { strategy: { type: "api_key", in: "header", name: "Authorization", prefix: "Bearer " }, credentials: { api_key: "sk-" + "k".repeat(40) }, expires_at: null },
  api_key_query: { strategy: { type: "api_key", in: "query", name: "key", prefix: "" }, credentials: { api_key: "k".repeat(39) }, expires_at: null },
  basic_auth: { strategy: { type: "basic_auth" }, credentials: { username: "AC" + "0".repeat(32), password: "p".repeat(32) }, expires_at: null },
  aws_sigv4: { strategy: { type: "aws_sigv4", region: "eu-west-1", service: "execute-api" }, credentials: { access_key_id: "AKIDEXAMPLE", secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", session_token: "t".repeat(300) }, expires_at: null },
};

interface Row { name: string; iterations: number; cpuUs: number; meanUs: number; p50Us: number; p99Us: number }

async function main() {
  const outIndex = process.argv.indexOf("--out");
  const out = outIndex > 0 ? process.argv[outIndex + 1] : undefined;
  const server = http.createServer((req, res) => {
    const id = decodeURIComponent((req.url ?? "").split("/").pop() ?? "");
    const kind = id.split("-")[0]!;
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(JSON.stringify(tokens[kind] ?? tokens["oauth2"]));
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const nexus = new Nexus({ baseUrl, apiKey: "nxk_bench" });

  const rows: Row[] = [];
  // A reference for how loaded the machine is: one synchronous SHA-256 of 300 bytes with node:crypto (about 1 µs idle).
  const { createHash } = await import("node:crypto");
  const reference = "x".repeat(300);
  rows.push(await measure("reference: node:crypto sha256 of 300 B (machine load)", 50_000, async () => {
    createHash("sha256").update(reference).digest("hex");
  }));
  for (const kind of Object.keys(tokens)) {
    await nexus.getCredentials(`${kind}-1`); // warm the cache
    const url = new URL("https://api.example.com/v1/items?page=2");
    const iterations = kind === "aws_sigv4" ? 20_000 : 200_000;
    rows.push(await measure(`apply cached ${kind} (GET)`, iterations, async () => {
      const credentials = await nexus.getCredentials(`${kind}-1`);
      await applyCredentials(credentials, { method: "GET", url: new URL(url), headers: new Headers({ accept: "application/json" }), body: null });
    }));
  }
  const body = JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: "item " + i })) });
  rows.push(await measure(`apply cached aws_sigv4 (POST, ${body.length} B body hashed)`, 20_000, async () => {
    const credentials = await nexus.getCredentials("aws_sigv4-1");
    await applyCredentials(credentials, { method: "POST", url: new URL("https://api.example.com/v1/items"), headers: new Headers({ "content-type": "application/json" }), body });
  }));

  // Cold fetch: an empty cache each time (a new client per call would also pay for the keep-alive connection;
  // invalidate keeps the connection, as a long-lived process does when an entry expires).
  let n = 0;
  rows.push(await measure("cold fetch: GET /v1/token over loopback, parsed (keep-alive)", 3_000, async () => {
    const id = `oauth2-cold-${n++}`;
    await nexus.getCredentials(id);
  }));
  rows.push(await measure("cold fetch: 1,000 concurrent callers, one GET /v1/token (per batch)", 200, async () => {
    const id = `oauth2-burst-${n++}`;
    await Promise.all(Array.from({ length: 1000 }, () => nexus.getCredentials(id)));
  }));
  server.close();

  // Against a real Nexus when run through ../scenario/run.sh: a basic_auth connection (credentials from
  // scenario.json), GET /v1/token with nothing cached, so Nexus does its full read (API key, connection, decrypt).
  const real = await realNexus();
  if (real) {
    rows.push(await measure("cold fetch: GET /v1/token from a real Nexus (SQLite, loopback)", 2_000, async () => {
      real.nexus.invalidate(real.id);
      await real.nexus.getCredentials(real.id);
    }));
    const burst = await measure("cold fetch: 1,000 concurrent callers on a real Nexus, one GET /v1/token (per batch)", 100, async () => {
      real.nexus.invalidate(real.id);
      await Promise.all(Array.from({ length: 1000 }, () => real.nexus.getCredentials(real.id)));
    });
    rows.push(burst);
  }

  const table = [
    "| operation | iterations | CPU per op (µs) | wall mean (µs) | wall p50 (µs) | wall p99 (µs) |",
    "|---|---:|---:|---:|---:|---:|",
    ...rows.map((r) => `| ${r.name} | ${r.iterations} | ${r.cpuUs.toFixed(1)} | ${r.meanUs.toFixed(1)} | ${r.p50Us.toFixed(1)} | ${r.p99Us.toFixed(1)} |`),
  ].join("\n");
  console.log(table);
  if (out) {
    const cpu = os.cpus()[0]?.model ?? "unknown CPU";
    const text = `# TypeScript SDK micro-benchmarks

- date: ${new Date().toISOString().slice(0, 16)}Z
- machine: ${cpu}, ${os.cpus().length} cores shared with other workers (load average ${os.loadavg().map((l) => l.toFixed(1)).join(" / ")} when the run ended), Node ${process.version}
- command: \`(cd sdks/typescript && npm run build) && sdks/scenario/run.sh node sdks/typescript/build/bench/bench.js --out bench/results/sdk-typescript.md\` (without run.sh: no real-Nexus rows)
- "CPU per op": the process's CPU time (user + system, all its threads: \`process.cpuUsage\`) over the loop, divided by
  the iterations. On a shared machine wall time mostly measures other processes' time slices; CPU time does not.
- "apply cached": \`nexus.getCredentials(id)\` answered from the cache plus \`applyCredentials\` on a fresh URL and
  Headers (what \`nexus.fetch(id)\` does before calling fetch). Target: under 50 µs.
- "cold fetch … over loopback": \`getCredentials\` with nothing cached, against a loopback node:http server that
  answers \`GET /v1/token\` with a fixed JSON body (the SDK and the HTTP client, not Nexus's own work).
- "cold fetch … real Nexus": the same against the Release server that \`../scenario/run.sh\` starts (SQLite), for a
  basic_auth connection: \`sdks/scenario/run.sh node sdks/typescript/build/bench/bench.js --out …\`.

${table}

## Reading the figures

- Bearer, API key and Basic cost one cache lookup, a URL and a Headers object; the Headers object is most of it.
- SigV4 hashes synchronously with the SDK's own SHA-256/HMAC-SHA256 (\`src/sha256.ts\`): one SHA-256 of the
  canonical request and one HMAC per request, the signing key being derived once per day, region and service and
  kept per credentials object (its HMAC pads pre-hashed). A body is hashed with one more SHA-256 (Web Crypto only
  for bodies over 64 KiB, to keep the event loop free).
- A burst of 1,000 callers on a cold entry costs one request to Nexus; the rest wait on the same promise.
`;
    writeFileSync(out, text);
  }
}

async function realNexus(): Promise<{ nexus: Nexus; id: string } | undefined> {
  const scenarioPath = process.env["NEXUS_SCENARIO"];
  const baseUrl = process.env["NEXUS_URL"];
  const admin = process.env["NEXUS_ADMIN_API_KEY"];
  if (!scenarioPath || !baseUrl || !admin) {
    return undefined;
  }
  const { readFileSync } = await import("node:fs");
  const scenario = JSON.parse(readFileSync(scenarioPath, "utf8").replaceAll("{nexus}", baseUrl).replaceAll("{upstream}", process.env["NEXUS_SCENARIO_UPSTREAM"] ?? ""));
  const adminClient = new Nexus({ baseUrl, apiKey: admin });
  const { api_key: apiKey } = await adminClient.request<{ api_key: string }>("POST", "/v1/admin/api-keys", { body: scenario.api_key });
  const basic = scenario.providers.find((p: { strategy: string }) => p.strategy === "basic_auth");
  await adminClient.request("POST", "/v1/providers", { body: basic.registration });
  const nexus = new Nexus({ baseUrl, apiKey });
  const { connectionId } = await nexus.requestConnection({ workspaceId: scenario.workspace_id, provider: basic.name, returnUrl: scenario.return_url });
  await nexus.submitCredentials(connectionId, basic.credentials);
  return { nexus, id: connectionId };
}

async function measure(name: string, iterations: number, fn: () => Promise<void>): Promise<Row> {
  for (let i = 0; i < Math.min(iterations, 2000); i++) await fn(); // warm-up (JIT)
  const samples = new Float64Array(iterations);
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await fn();
    samples[i] = performance.now() - t;
  }
  const total = performance.now() - start;
  const used = process.cpuUsage(cpu);
  samples.sort();
  return {
    name,
    iterations,
    cpuUs: (used.user + used.system) / iterations,
    meanUs: (total / iterations) * 1000,
    p50Us: samples[Math.floor(iterations * 0.5)]! * 1000,
    p99Us: samples[Math.floor(iterations * 0.99)]! * 1000,
  };
}

await main();
