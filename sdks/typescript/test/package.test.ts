// The package as published: its entry point (package.json "exports") loads, exports the API, ships declarations,
// and the library imports nothing from Node (edge runtimes have only fetch, Web Crypto and TextEncoder).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));

test("package.json's exports point at built ESM with declarations, and there are no runtime dependencies", async () => {
  assert.equal(pkg.type, "module");
  assert.equal(pkg.dependencies, undefined);
  const entry = pkg.exports["."];
  assert.ok(existsSync(path.join(root, entry.types)), "the declarations are missing");
  const mod = await import(pathToFileURL(path.join(root, entry.import)).href);
  for (const name of ["Nexus", "Credentials", "applyCredentials", "signV4", "AttentionRequiredError", "NotActiveError", "NotFoundError", "ForbiddenError", "RateLimitedError", "UnavailableError", "verifyWebhook", "WebhookVerificationError"]) {
    assert.equal(typeof mod[name], "function", `${name} is not exported`);
  }
});

test("the library imports nothing from Node and reads process only where it exists", () => {
  const dist = path.join(root, "dist");
  for (const file of readdirSync(dist).filter((f) => f.endsWith(".js"))) {
    const text = readFileSync(path.join(dist, file), "utf8");
    assert.doesNotMatch(text, /from\s+["'](node:|fs|http|crypto|util|buffer)/, `${file} imports a Node module`);
    assert.doesNotMatch(text, /\brequire\(|\bBuffer\b/, `${file} uses require or Buffer`);
    for (const line of text.split("\n").filter((l) => /\bprocess\b/.test(l) && !/^\s*(\*|\/\/)/.test(l))) {
      assert.match(line, /globalThis/, `${file} reads process without checking it exists: ${line.trim()}`);
    }
  }
});
