// The official TypeScript MCP SDK's client, given only the URL of Nexus's /mcp (argv[2]). It registers itself by
// dynamic client registration and asks for authorization through the SDK's OAuthClientProvider; the person's side is
// played by the test that runs this script (tests/Nexus.Server.Tests/Mcp/McpTypeScriptClientTests.cs):
//
//   stdout  AUTHORIZE <authorization URL>     the SDK's redirectToAuthorization, for the person's browser
//   stdin   <the URL the browser was sent back to, with code and state>
//   stdout  RESULT <json>                     client_id, tools, list_services' answer, and every HTTP request made
//   stdin   CALL <json {name, arguments}>     then, as often as the test likes: a tools/call through the SDK
//   stdout  TOOL <json>                       the tool's result as the SDK returned it ({"sdk_error": …} if it threw)
//   stdin   END                               (or stdin closed): the client closes and the script exits
//
// Anything else on stdout or stderr is diagnostics. Exit code 0 only when the whole run worked.
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const mcpUrl = new URL(process.argv[2]);
const redirectUrl = process.argv[3] ?? "http://127.0.0.1:48123/callback";
const requests = [];

// Every request the SDK sends (MCP and OAuth alike), as "METHOD path status".
const recordingFetch = async (input, init) => {
  const response = await fetch(input, init);
  const url = new URL(input instanceof Request ? input.url : input);
  requests.push(`${init?.method ?? (input instanceof Request ? input.method : "GET")} ${url.pathname} ${response.status}`);
  return response;
};

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const expectedState = randomBytes(16).toString("base64url");
let returnedTo;

/** Keeps everything in memory, as a short-lived assistant would. */
class Provider {
  #client;
  #tokens;
  #verifier;
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return {
      client_name: "TypeScript SDK Assistant",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() { return expectedState; }
  clientInformation() { return this.#client; }
  saveClientInformation(info) { this.#client = info; }
  tokens() { return this.#tokens; }
  saveTokens(tokens) { this.#tokens = tokens; }
  saveCodeVerifier(verifier) { this.#verifier = verifier; }
  codeVerifier() { return this.#verifier; }
  async redirectToAuthorization(url) {
    console.log(`AUTHORIZE ${url.href}`);
    const line = await lines.next();
    if (line.done) throw new Error("stdin closed before the redirect came back");
    returnedTo = new URL(line.value.trim());
  }
}

const provider = new Provider();
const connect = async () => {
  const client = new Client({ name: "nexus-ts-sdk-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  await client.connect(transport);
  return { client, transport };
};

let session;
try {
  session = await connect();
  throw new Error("/mcp accepted a client that had no token");
} catch (error) {
  if (!(error instanceof UnauthorizedError) || !returnedTo) throw error;
}

// The browser came back to the redirect URI: the state must be ours (RFC 6749 §10.12), then the code is redeemed.
if (returnedTo.searchParams.get("state") !== expectedState) throw new Error(`state mismatch: ${returnedTo.href}`);
const code = returnedTo.searchParams.get("code");
if (!code) throw new Error(`no code: ${returnedTo.href}`);
{
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  await transport.finishAuth(code);
}

session = await connect();
const tools = (await session.client.listTools()).tools.map((t) => t.name).sort();
const services = await session.client.callTool({ name: "list_services", arguments: {} });

console.log(`RESULT ${JSON.stringify({
  client_id: provider.clientInformation()?.client_id,
  // The access token's claims, not the token itself.
  claims: JSON.parse(Buffer.from(provider.tokens().access_token.split(".")[1], "base64url").toString()),
  tools,
  list_services: services,
  requests,
})}`);

// The test drives the rest (connect_service, call_api, …) one tool call at a time; the person's side happens in
// the test's browser between two calls.
for (;;) {
  const line = await lines.next();
  if (line.done || line.value.trim() === "END") break;
  if (!line.value.startsWith("CALL ")) throw new Error(`unexpected input: ${line.value}`);
  const { name, arguments: args } = JSON.parse(line.value.slice("CALL ".length));
  let result;
  try {
    result = await session.client.callTool({ name, arguments: args ?? {} });
  } catch (error) {
    result = { sdk_error: String(error?.message ?? error), code: error?.code };
  }
  console.log(`TOOL ${JSON.stringify(result)}`);
}

await session.client.close();
process.exit(0);
