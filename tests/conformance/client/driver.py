#!/usr/bin/python3
"""The MCP conformance suite's client under test is Nexus; this driver is the "client command" the suite runs.

    conformance client --command "/usr/bin/python3 tests/conformance/client/driver.py" --suite all

The suite starts the scenario's MCP server (and its authorization server, which approves every request at once),
then runs this driver with the server's URL as the last argument, MCP_CONFORMANCE_SCENARIO, and, for some scenarios,
MCP_CONFORMANCE_CONTEXT (pre-registered or machine-to-machine credentials). The driver never speaks OAuth itself:
it registers the server with a running Nexus by its URL alone (POST /v1/providers, auth_mode mcp_oauth2), asks for a
connection, plays the person's browser by following the authorization redirects over HTTP (the scenario's
authorization server sends it straight back to Nexus's /auth/callback), and calls the scenario's tool through Nexus's
Bridge. A 403 insufficient_scope from the server reaches the driver as Nexus's step-up problem with an auth_url, which
it follows like the first consent. Needs NEXUS_URL and NEXUS_ADMIN_API_KEY (tests/conformance/client/run.sh sets
them). Standard library only.
"""

import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

NEXUS = os.environ["NEXUS_URL"].rstrip("/")
API_KEY = os.environ["NEXUS_ADMIN_API_KEY"]
RETURN_URL = os.environ.get("NEXUS_CONFORMANCE_RETURN_URL", "https://app.example.test/return")
SCENARIO = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
CONTEXT = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
MAX_CONSENTS = 5  # more than Nexus's own limit (3 rounds), so that Nexus's limit is what the suite sees


def log(*parts):
    print(f"[driver {SCENARIO}]", *parts, file=sys.stderr, flush=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None):
    """One request, redirects not followed; returns (status, headers, text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, response.headers, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


def nexus(method, path, body=None, headers=None):
    return http(method, NEXUS + path, body, {"X-API-Key": API_KEY, **(headers or {})})


def register(server_url):
    body = {"name": "conf-" + secrets.token_hex(4), "auth_mode": "mcp_oauth2", "mcp_url": server_url}
    if CONTEXT.get("client_id"):
        body["client_id"] = CONTEXT["client_id"]
    if CONTEXT.get("client_secret"):
        body["client_secret"] = CONTEXT["client_secret"]
    if CONTEXT.get("private_key_pem"):
        body["private_key_pem"] = CONTEXT["private_key_pem"]
    if SCENARIO.startswith("auth/client-credentials"):
        body["grant_type"] = "client_credentials"
    status, _, text = nexus("POST", "/v1/providers", body)
    if status != 201:
        log("Nexus refused the server:", status, text)
        sys.exit(1)
    log("registered", body["name"], "->", json.loads(text).get("mcp", {}).get("registration"))
    return body["name"]


def consent(auth_url):
    """The person's browser: GET auth_url and every redirect until the browser lands at RETURN_URL."""
    url = auth_url
    for _ in range(10):
        if url.startswith(RETURN_URL):
            landing = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
            if landing.get("status") != "active":
                log("the consent ended", landing)
                sys.exit(1)
            return landing.get("connection_id")
        status, headers, text = http("GET", url)
        if status not in (301, 302, 303, 307, 308):
            log("the browser stopped at", url, status, text[:500])
            sys.exit(1)
        url = urllib.parse.urljoin(url, headers["Location"])
    log("too many redirects")
    sys.exit(1)


def connect(provider):
    status, _, text = nexus("POST", "/v1/request-connection",
                            {"workspace_id": "ws_conformance", "provider_name": provider, "return_url": RETURN_URL})
    if status != 201:
        log("request-connection failed:", status, text)
        sys.exit(1)
    answer = json.loads(text)
    if answer.get("status") == "active" or not answer.get("auth_url"):
        return answer["connection_id"]  # machine-to-machine: active without a person
    consent(answer["auth_url"])
    return answer["connection_id"]


class Bridge:
    """A minimal Streamable HTTP client pointed at Nexus's Bridge for one connection."""

    def __init__(self, connection_id):
        self.path = "/v1/bridge/" + connection_id
        self.session = None
        self.next_id = 1

    def send(self, method, params=None, notification=False):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if not notification:
            message["id"] = self.next_id
            self.next_id += 1
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        status, answer_headers, text = nexus("POST", self.path, message, headers)
        if answer_headers.get("Mcp-Session-Id"):
            self.session = answer_headers["Mcp-Session-Id"]
        return status, text

    @staticmethod
    def result(text):
        """The JSON-RPC answer: a JSON body, or the first data event of an SSE stream that carries one."""
        text = text.strip()
        if text.startswith("{"):
            return json.loads(text)
        for line in text.splitlines():
            if line.startswith("data:") and line[5:].strip().startswith("{"):
                message = json.loads(line[5:])
                if "result" in message or "error" in message:
                    return message
        return None

    def call(self, method, params=None):
        """A request; a step-up problem is answered by the person's consent and the request sent again."""
        for _ in range(MAX_CONSENTS):
            status, text = self.send(method, params)
            if status == 200:
                answer = self.result(text)
                if answer is None or "error" in answer:
                    log(method, "failed:", text[:500])
                    sys.exit(1)
                return answer["result"]
            problem = json.loads(text) if text.strip().startswith("{") else {}
            if status == 403 and problem.get("code") == "insufficient_scope" and problem.get("auth_url"):
                log("step-up for", problem.get("scopes"))
                consent(problem["auth_url"])
                continue
            log(method, "answered", status, text[:500])
            sys.exit(1)
        log("gave up after", MAX_CONSENTS, "consents")
        sys.exit(1)


def main():
    server_url = sys.argv[-1]
    provider = register(server_url)
    connection_id = connect(provider)
    bridge = Bridge(connection_id)
    bridge.call("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                               "clientInfo": {"name": "nexus-conformance-driver", "version": "1.0"}})
    bridge.send("notifications/initialized", notification=True)
    tools = bridge.call("tools/list").get("tools", [])
    log("tools:", [t["name"] for t in tools])
    for tool in tools:
        result = bridge.call("tools/call", {"name": tool["name"], "arguments": {}})
        log("called", tool["name"], "->", json.dumps(result)[:200])


if __name__ == "__main__":
    main()
