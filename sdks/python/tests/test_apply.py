"""Applying each strategy, through the plain path (client.send), requests, httpx and urllib, against a loopback
provider that checks what arrived (and verifies SigV4 signatures); the 401 rule: one refresh, one retry."""

import asyncio
import base64
import datetime as dt
import json
import re
import socket
import subprocess
import sys
import unittest
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import requests

from nexus_sdk import AttentionRequired, ConfigurationError, NexusClient
from nexus_sdk import httpx as nexus_httpx
from nexus_sdk import requests as nexus_requests
from nexus_sdk import sigv4
from nexus_sdk import urllib as nexus_urllib
from support import HANG_UP, FakeServer, js, problem

SRC = str(Path(__file__).resolve().parents[1] / "src")
AWS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
       "session_token": "sess-token-1"}
STRATEGIES = {
    "c_oauth": ({"type": "oauth2"}, lambda v: {"access_token": "at-%d" % v}),
    "c_header": ({"type": "api_key", "in": "header", "name": "X-Key", "prefix": "Key "}, lambda v: {"api_key": "k-%d" % v}),
    "c_query": ({"type": "api_key", "in": "query", "name": "api_key", "prefix": "pre_"}, lambda v: {"api_key": "q-%d" % v}),
    "c_basic": ({"type": "basic_auth"}, lambda v: {"username": "user", "password": "pw-%d" % v}),
    "c_aws": ({"type": "aws_sigv4", "region": "eu-west-1", "service": "execute-api"},
              lambda v: dict(AWS, secret_access_key=AWS["secret_access_key"] + str(v))),
}


def verify_sigv4(seen, fields) -> bool:
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})", seen.headers.get("authorization", ""))
    if not m or m.group(1) != fields["access_key_id"]:
        return False
    if seen.headers.get("x-amz-security-token") != fields.get("session_token"):
        return False
    names = m.group(5).split(";")
    headers = [(n, seen.headers[n]) for n in names if n in seen.headers]
    when = dt.datetime.strptime(seen.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
    creds = sigv4.AwsCredentials(fields["access_key_id"], fields["secret_access_key"], fields.get("session_token"))
    expected = sigv4.sign(seen.method, "http://" + seen.headers["host"] + seen.path, headers, seen.body, creds,
                          m.group(3), m.group(4), when, unsigned_headers=())
    return expected.signed_headers == m.group(5) and expected.signature == m.group(6)


class Provider:
    """The loopback Nexus and provider: tokens per connection at a version that POST /v1/refresh bumps; the provider
    accepts only the current version (or never, with reject_all)."""

    def __init__(self, server):
        self.server = server
        self.version = {cid: 1 for cid in STRATEGIES}
        self.accept_version = {cid: 1 for cid in STRATEGIES}
        self.refresh_reply = None
        self.reject_all = False
        server.route("GET", r"/v1/token/(\w+)", self.token)
        server.route("POST", r"/v1/refresh/(\w+)", self.refresh)
        server.route("GET", r"/api/(\w+)/.*", self.api)
        server.route("POST", r"/api/(\w+)/.*", self.api)

    def token(self, seen, m):
        strategy, fields = STRATEGIES[m.group(1)]
        return js(200, {"strategy": strategy, "credentials": fields(self.version[m.group(1)]), "expires_at": None})

    def refresh(self, seen, m):
        if self.refresh_reply:
            return self.refresh_reply
        if m.group(1) != "c_oauth":  # as Nexus: only an OAuth 2.0 connection has something to refresh
            return problem(409, "refresh_not_supported", connection_id=m.group(1), status="active")
        self.version[m.group(1)] += 1
        return js(200, {"connection_id": m.group(1), "status": "active"})

    def move_on(self, cid):
        """The provider accepts only a newer credential than the one the client holds: for OAuth 2.0 the token Nexus's
        next refresh issues; for the other strategies one captured anew, which Nexus holds already."""
        self.accept_version[cid] = self.version[cid] + 1
        if cid != "c_oauth":
            self.version[cid] += 1

    def api(self, seen, m):
        cid = m.group(1)
        fields = STRATEGIES[cid][1](self.accept_version[cid])
        h = seen.headers
        if cid == "c_oauth":
            ok = h.get("authorization") == "Bearer " + fields["access_token"]
        elif cid == "c_header":
            ok = h.get("x-key") == "Key " + fields["api_key"] and "authorization" not in h
        elif cid == "c_query":
            ok = parse_qs(urlsplit(seen.path).query).get("api_key") == ["pre_" + fields["api_key"]]
        elif cid == "c_basic":
            ok = h.get("authorization") == "Basic " + base64.b64encode(("user:" + fields["password"]).encode()).decode()
        else:
            ok = verify_sigv4(seen, fields)
        if self.reject_all or not ok:
            return 401, {"Content-Type": "text/plain"}, b"unauthorized"
        return js(200, {"ok": True, "path": seen.path, "body": seen.body.decode()})


def call(adapter, client, cid, url, method="GET", body=None):
    """Sends one request with an adapter; returns (status, json body or None)."""
    if adapter == "send":
        r = client.send(cid, method, url, body=body, headers={"Content-Type": "application/json"} if body else None)
        return r.status, r.json() if r.status == 200 else None
    if adapter == "requests":
        r = requests.request(method, url, data=body, auth=nexus_requests.NexusAuth(client, cid), timeout=5)
        return r.status_code, r.json() if r.status_code == 200 else None
    if adapter == "httpx":
        with httpx.Client(auth=nexus_httpx.NexusAuth(client, cid), timeout=5) as h:
            r = h.request(method, url, content=body)
            return r.status_code, r.json() if r.status_code == 200 else None
    if adapter == "httpx-async":
        async def run():
            async with httpx.AsyncClient(auth=nexus_httpx.NexusAuth(client, cid), timeout=5) as h:
                r = await h.request(method, url, content=body)
                return r.status_code, r.json() if r.status_code == 200 else None
        return asyncio.run(run())
    if adapter == "urllib":
        opener = urllib.request.build_opener(nexus_urllib.NexusHandler(client, cid))
        data = body.encode() if isinstance(body, str) else body
        try:
            with opener.open(urllib.request.Request(url, data=data, method=method), timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            e.close()
            return e.code, None
    raise AssertionError(adapter)


ADAPTERS = ("send", "requests", "httpx", "httpx-async", "urllib")


class ApplyTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.provider = Provider(self.server)
        self.client = NexusClient(self.server.url, "nxk_test", sleep=lambda s: None)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_every_strategy_is_accepted_by_the_provider_through_every_adapter(self):
        for adapter in ADAPTERS:
            for cid in STRATEGIES:
                for method, body in (("GET", None), ("POST", '{"a": 1}')):
                    with self.subTest(adapter=adapter, strategy=cid, method=method):
                        status, data = call(adapter, self.client, cid, self.server.url + "/api/%s/x?y=1" % cid,
                                            method, body)
                        self.assertEqual(200, status)
                        self.assertEqual(body or "", data["body"])
        self.assertEqual(len(STRATEGIES), self.server.count("GET", "/v1/token/"))  # one fetch each, then cached

    def test_on_a_401_each_adapter_renews_the_credentials_once_and_retries_once(self):
        # OAuth 2.0: one POST /v1/refresh, then one read. The others have nothing to refresh: one read (they were
        # captured anew), no POST /v1/refresh.
        for adapter in ADAPTERS:
            for cid in STRATEGIES:
                with self.subTest(adapter=adapter, strategy=cid):
                    self.client.credentials(cid)  # cache version n
                    self.provider.move_on(cid)
                    refreshes = self.server.count("POST", "/v1/refresh/")
                    reads = self.server.count("GET", "/v1/token/")
                    calls = self.server.count("GET", "/api/" + cid)
                    status, _ = call(adapter, self.client, cid, self.server.url + "/api/%s/x" % cid)
                    self.assertEqual(200, status)
                    self.assertEqual(refreshes + (cid == "c_oauth"), self.server.count("POST", "/v1/refresh/"))
                    self.assertEqual(reads + 1, self.server.count("GET", "/v1/token/"))
                    self.assertEqual(calls + 2, self.server.count("GET", "/api/" + cid))

    def test_a_second_401_is_returned_as_it_is(self):
        self.provider.reject_all = True
        for adapter in ADAPTERS:
            with self.subTest(adapter=adapter):
                calls = self.server.count("GET", "/api/c_oauth")
                status, _ = call(adapter, self.client, "c_oauth", self.server.url + "/api/c_oauth/x")
                self.assertEqual(401, status)
                self.assertEqual(calls + 2, self.server.count("GET", "/api/c_oauth"))

    def test_a_refresh_the_provider_rejects_raises_attention_required_from_every_adapter(self):
        self.provider.reject_all = True
        self.provider.refresh_reply = problem(409, "connection_not_active", status="attention_required",
                                              error="invalid_grant", connection_id="c_oauth")
        for adapter in ADAPTERS:
            with self.subTest(adapter=adapter):
                with self.assertRaises(AttentionRequired) as caught:
                    call(adapter, self.client, "c_oauth", self.server.url + "/api/c_oauth/x")
                self.assertEqual(("c_oauth", "invalid_grant"), (caught.exception.connection_id, caught.exception.reason))

    def test_a_request_whose_body_cannot_be_replayed_is_not_retried(self):
        self.provider.reject_all = True
        r = requests.post(self.server.url + "/api/c_oauth/x", data=(c for c in [b"a", b"b"]),
                          auth=nexus_requests.NexusAuth(self.client, "c_oauth"), timeout=5)
        self.assertEqual(401, r.status_code)
        self.assertEqual(1, self.server.count("POST", "/api/c_oauth"))
        self.assertEqual(0, self.server.count("POST", "/v1/refresh/"))

    def test_a_query_api_key_is_not_in_the_url_raise_for_status_prints_requests_and_httpx(self):
        self.provider.reject_all = True  # a 401, which raise_for_status() turns into an error naming the URL
        url = self.server.url + "/api/c_query/x?page=2"
        r = requests.get(url, auth=nexus_requests.NexusAuth(self.client, "c_query"), timeout=5)
        with self.assertRaises(requests.HTTPError) as caught:
            r.raise_for_status()
        self.assertNotIn("pre_q-", str(caught.exception))
        self.assertIn("page=2", r.url)
        self.assertIn("api_key=[redacted]", r.url)
        with httpx.Client(auth=nexus_httpx.NexusAuth(self.client, "c_query"), timeout=5) as h:
            r2 = h.get(url)
        with self.assertRaises(httpx.HTTPStatusError) as caught2:
            r2.raise_for_status()
        self.assertNotIn("pre_q-", str(caught2.exception))
        self.assertNotIn("pre_q-", str(r2.url))

        async def run():
            async with httpx.AsyncClient(auth=nexus_httpx.NexusAuth(self.client, "c_query"), timeout=5) as h:
                return await h.get(url)
        self.assertNotIn("pre_q-", str(asyncio.run(run()).url))
        # The key did go to the provider, in the query.
        self.assertTrue(all("api_key=pre_q-" in s.path for s in self.server.seen if s.path.startswith("/api/c_query")))

    def test_a_query_api_key_is_not_in_the_request_of_an_httpx_error_raised_before_any_answer(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        refused = "http://127.0.0.1:%d/x?page=2" % sock.getsockname()[1]
        sock.close()

        def check(error):
            url = str(error.request.url)
            self.assertNotIn("pre_q-", url)
            self.assertIn("page=2", url)
            self.assertIn("api_key=", url)
            for text in (str(error), repr(error), *map(str, error.args)):
                self.assertNotIn("pre_q-", text)

        with httpx.Client(auth=nexus_httpx.NexusAuth(self.client, "c_query"), timeout=5) as h:
            with self.assertRaises(httpx.ConnectError) as caught:
                h.get(refused)
        check(caught.exception)

        async def run():
            async with httpx.AsyncClient(auth=nexus_httpx.NexusAuth(self.client, "c_query"), timeout=5) as h:
                await h.get(refused)
        with self.assertRaises(httpx.ConnectError) as caught:
            asyncio.run(run())
        check(caught.exception)

        # A redirect's hop on the same origin, which the hook gave the key, and no answer to it.
        self.server.route("GET", r"/api/c_query/moved\?.*", lambda seen, m: (302, {"Location": "/api/c_query/gone?page=2"}, b""))
        self.server.route("GET", r"/api/c_query/gone\?.*", lambda seen, m: HANG_UP)
        for client in (httpx.Client, httpx.AsyncClient):
            hooks = nexus_httpx.EVENT_HOOKS if client is httpx.Client else nexus_httpx.ASYNC_EVENT_HOOKS
            h = client(auth=nexus_httpx.NexusAuth(self.client, "c_query"), timeout=5, follow_redirects=True, event_hooks=hooks)
            with self.assertRaises(httpx.RemoteProtocolError) as caught:
                if client is httpx.Client:
                    with h:
                        h.get(self.server.url + "/api/c_query/moved?page=1")
                else:
                    async def hop():
                        async with h:
                            await h.get(self.server.url + "/api/c_query/moved?page=1")
                    asyncio.run(hop())
            self.assertIn("/api/c_query/gone", str(caught.exception.request.url))
            check(caught.exception)
        # The key did go, to the first address and to the hop.
        self.assertEqual(2, sum(1 for s in self.server.seen if s.path.startswith("/api/c_query/gone?") and "api_key=pre_q-1" in s.path))

    def test_a_query_api_key_replaces_one_already_in_the_url(self):
        creds = self.client.credentials("c_query")
        url = creds.apply("GET", "https://api.example/v1/x?api_key=old&b=2#frag", {})
        self.assertEqual("https://api.example/v1/x?b=2&api_key=pre_q-1#frag", url)

    def test_a_header_credential_replaces_one_in_another_case(self):
        headers = {"authorization": "Bearer stale"}
        self.client.credentials("c_oauth").apply("GET", "https://api.example/", headers)
        self.assertEqual({"Authorization": "Bearer at-1"}, headers)

    def test_urllib_never_puts_the_credential_on_a_redirect_to_another_host(self):
        port = self.server.url.rsplit(":", 1)[1]
        self.server.route("GET", r"/api/c_oauth/hop", lambda s, m: (302, {"Location": "http://localhost:%s/landing" % port}, b""))
        self.server.route("GET", r"/landing", lambda s, m: js(200, {"authorization": s.headers.get("authorization")}))
        opener = urllib.request.build_opener(nexus_urllib.NexusHandler(self.client, "c_oauth"))
        with opener.open(self.server.url + "/api/c_oauth/hop", timeout=5) as r:
            self.assertEqual({"authorization": None}, json.loads(r.read()))
        self.assertEqual("Bearer at-1", [s for s in self.server.seen if s.path == "/api/c_oauth/hop"][0].headers["authorization"])

    def test_urllib_never_puts_the_credential_on_a_redirect_to_another_port_of_the_same_host(self):
        other = FakeServer()
        self.addCleanup(other.close)
        other.route("GET", r"/landing", lambda s, m: js(200, {"authorization": s.headers.get("authorization")}))
        self.server.route("GET", r"/api/c_oauth/port-hop", lambda s, m: (302, {"Location": other.url + "/landing"}, b""))
        self.assertEqual(self.server.url.split(":")[1], other.url.split(":")[1])  # the same host, 127.0.0.1
        opener = urllib.request.build_opener(nexus_urllib.NexusHandler(self.client, "c_oauth"))
        with opener.open(self.server.url + "/api/c_oauth/port-hop", timeout=5) as r:
            self.assertEqual({"authorization": None}, json.loads(r.read()))

    def test_urllib_keeps_the_credential_on_a_redirect_within_the_same_origin(self):
        self.server.route("GET", r"/api/c_oauth/same-hop", lambda s, m: (302, {"Location": self.server.url + "/api/c_oauth/here"}, b""))
        self.server.route("GET", r"/api/c_oauth/here", lambda s, m: js(200, {"authorization": s.headers.get("authorization")}))
        opener = urllib.request.build_opener(nexus_urllib.NexusHandler(self.client, "c_oauth"))
        with opener.open(self.server.url + "/api/c_oauth/same-hop", timeout=5) as r:
            self.assertEqual({"authorization": "Bearer at-1"}, json.loads(r.read()))

    def test_the_bridge_auth_sends_the_api_key_to_nexus_only(self):
        self.server.route("GET", r"/v1/bridge/c_oauth/me", lambda s, m: js(200, {"key": s.headers.get("x-api-key")}))
        url = self.client.bridge_url("c_oauth", "/me")
        self.assertEqual("nxk_test", requests.get(url, auth=nexus_requests.NexusBridgeAuth(self.client)).json()["key"])
        self.assertEqual("nxk_test", httpx.get(url, auth=nexus_httpx.NexusBridgeAuth(self.client)).json()["key"])
        with self.assertRaises(ValueError):
            requests.get("http://127.0.0.2:1/", auth=nexus_requests.NexusBridgeAuth(self.client))

    def redirect_elsewhere(self, prefix):
        """``{prefix}/(cid)/hop`` answers 302 to another host (``localhost`` for ``127.0.0.1``, same server), whose
        ``/landing/...`` echoes the headers that reached it. Returns the landing URL prefix."""
        landing = "http://localhost:%s/landing" % self.server.url.rsplit(":", 1)[1]
        self.server.route("GET", prefix + r"/(\w+)/hop", lambda s, m: (302, {"Location": "%s/%s" % (landing, m.group(1))}, b""))
        self.server.route("GET", r"/landing/(\w+)", lambda s, m: js(200, {"headers": s.headers}))
        return landing

    def assert_nothing_followed(self, landed, names):
        self.assertEqual("localhost", landed["host"].split(":")[0])
        self.assertEqual([], [n for n in names if n in landed], "the credentials followed the redirect")
        self.assertEqual("mine", landed.get("x-caller"))

    CREDENTIAL_HEADERS = {"c_oauth": ["authorization"], "c_header": ["x-key"], "c_basic": ["authorization"],
                          "c_aws": ["authorization", "x-amz-date", "x-amz-security-token"]}

    def test_requests_never_sends_the_credentials_to_another_host_a_redirect_names(self):
        self.redirect_elsewhere(r"/api")
        for cid, names in self.CREDENTIAL_HEADERS.items():
            with self.subTest(cid):
                r = requests.get(self.server.url + "/api/%s/hop" % cid, headers={"X-Caller": "mine"},
                                 auth=nexus_requests.NexusAuth(self.client, cid), timeout=5)
                self.assertEqual(200, r.status_code)
                sent = [s for s in self.server.seen if s.path == "/api/%s/hop" % cid][-1]
                self.assertEqual([], [n for n in names if n not in sent.headers])  # they did reach the provider
                self.assert_nothing_followed(r.json()["headers"], names)

    def test_requests_keeps_the_credentials_on_a_redirect_within_the_provider_s_origin(self):
        self.server.route("GET", r"/api/(\w+)/old", lambda s, m: (301, {"Location": "/api/%s/new" % m.group(1)}, b""))
        for cid in ("c_oauth", "c_header", "c_query"):
            with self.subTest(cid):
                r = requests.get(self.server.url + "/api/%s/old" % cid, auth=nexus_requests.NexusAuth(self.client, cid), timeout=5)
                self.assertEqual((200, True), (r.status_code, r.json()["ok"]))

    def test_requests_signs_each_redirect_on_the_provider_s_origin_anew(self):
        # The provider moved the resource on its own origin: each hop must carry a SigV4 signature for its own method,
        # path and body (the first one's, replayed, is refused), and an API key in the query must come along.
        for status, method, body, landed_method, landed_body in ((302, "GET", None, "GET", ""), (301, "GET", None, "GET", ""),
                                                                 (307, "POST", '{"a": 1}', "POST", '{"a": 1}'),
                                                                 (308, "POST", '{"a": 1}', "POST", '{"a": 1}'),
                                                                 (303, "POST", '{"a": 1}', "GET", "")):
            for cid in ("c_aws", "c_query", "c_oauth"):
                with self.subTest(status=status, strategy=cid):
                    self.server.route(method, r"/api/%s/moving(\?.*)?" % cid,
                                      lambda s, m, cid=cid, status=status: (status, {"Location": "/api/%s/moved/%d" % (cid, status)}, b""))
                    r = requests.request(method, self.server.url + "/api/%s/moving" % cid, data=body,
                                         auth=nexus_requests.NexusAuth(self.client, cid, retry_on_401=False), timeout=5)
                    self.assertEqual(200, r.status_code, r.text)
                    self.assertEqual(("/api/%s/moved/%d" % (cid, status), landed_body), (r.json()["path"].split("?")[0], r.json()["body"]))
                    self.assertEqual(landed_method, r.request.method)
                    self.assertEqual(status, r.history[0].status_code)

    def test_requests_after_a_401_retry_a_redirect_gets_the_new_credentials_on_the_origin_and_none_elsewhere(self):
        landing = self.redirect_elsewhere(r"/api")
        # The first key is refused; the refreshed one is redirected, elsewhere (hop) or on the same origin (move),
        # where only the refreshed key is accepted.
        self.client.credentials("c_header")  # k-1; then Nexus holds k-2, captured anew
        self.provider.move_on("c_header")
        refused = (401, {"Content-Type": "text/plain"}, b"unauthorized")
        self.server.route("GET", r"/api/c_header/hop", lambda s, m: (302, {"Location": landing + "/c_header"}, b"")
                          if s.headers.get("x-key") == "Key k-2" else refused)
        self.server.route("GET", r"/api/c_header/move", lambda s, m: (302, {"Location": "/api/c_header/moved"}, b"")
                          if s.headers.get("x-key") == "Key k-2" else refused)
        auth = nexus_requests.NexusAuth(self.client, "c_header")
        r = requests.get(self.server.url + "/api/c_header/hop", headers={"X-Caller": "mine"}, auth=auth, timeout=5)
        self.assertEqual(landing + "/c_header", r.url)
        self.assert_nothing_followed(r.json()["headers"], ["x-key"])
        self.provider.version["c_header"] = 1  # the client holds the refused key again; Nexus then k-2
        self.client.invalidate()
        self.client.credentials("c_header")
        self.provider.version["c_header"] = 2
        moved = requests.get(self.server.url + "/api/c_header/move", auth=auth, timeout=5)
        self.assertEqual((200, "/api/c_header/moved"), (moved.status_code, moved.json()["path"]))

    def test_the_requests_bridge_auth_drops_the_api_key_when_a_bridge_redirect_leaves_nexus(self):
        self.redirect_elsewhere(r"/v1/bridge")
        url = self.client.bridge_url("c_oauth", "/hop")
        r = requests.get(url, headers={"X-Caller": "mine"}, auth=nexus_requests.NexusBridgeAuth(self.client), timeout=5)
        self.assert_nothing_followed(r.json()["headers"], ["x-api-key"])
        self.assertEqual("nxk_test", [s for s in self.server.seen if s.path == "/v1/bridge/c_oauth/hop"][-1].headers["x-api-key"])
        kept = requests.get(url, auth=nexus_requests.NexusBridgeAuth(self.client), allow_redirects=False, timeout=5)
        self.assertEqual(302, kept.status_code)

    def httpx_get(self, url, auth, hooks=True, follow=True, asynchronous=False):
        if asynchronous:
            async def run():
                async with httpx.AsyncClient(auth=auth, follow_redirects=follow, timeout=5,
                                             event_hooks=nexus_httpx.ASYNC_EVENT_HOOKS if hooks else None) as h:
                    return await h.get(url, headers={"X-Caller": "mine"})
            return asyncio.run(run())
        with httpx.Client(auth=auth, follow_redirects=follow, timeout=5,
                          event_hooks=nexus_httpx.EVENT_HOOKS if hooks else None) as h:
            return h.get(url, headers={"X-Caller": "mine"})

    def test_httpx_with_its_redirect_hook_signs_each_redirect_on_the_provider_s_origin_anew(self):
        for asynchronous in (False, True):
            for status in (302, 307, 303):
                for cid in ("c_aws", "c_query"):
                    with self.subTest(asynchronous=asynchronous, status=status, strategy=cid):
                        self.server.route("POST", r"/api/%s/moving(\?.*)?" % cid,
                                          lambda s, m, cid=cid, status=status: (status, {"Location": "/api/%s/moved/%d" % (cid, status)}, b""))

                        async def run_async():
                            async with httpx.AsyncClient(auth=nexus_httpx.NexusAuth(self.client, cid, retry_on_401=False),
                                                         follow_redirects=True, timeout=5,
                                                         event_hooks=nexus_httpx.ASYNC_EVENT_HOOKS) as h:
                                return await h.post(self.server.url + "/api/%s/moving" % cid, content=b'{"a": 1}')

                        if asynchronous:
                            r = asyncio.run(run_async())
                        else:
                            with httpx.Client(auth=nexus_httpx.NexusAuth(self.client, cid, retry_on_401=False),
                                              follow_redirects=True, timeout=5, event_hooks=nexus_httpx.EVENT_HOOKS) as h:
                                r = h.post(self.server.url + "/api/%s/moving" % cid, content=b'{"a": 1}')
                        self.assertEqual(200, r.status_code, r.text)
                        self.assertEqual("/api/%s/moved/%d" % (cid, status), r.json()["path"].split("?")[0])
                        self.assertEqual('{"a": 1}' if status == 307 else "", r.json()["body"])  # httpx: a POST's 302 becomes a GET

    def test_httpx_with_its_redirect_hook_never_sends_the_credentials_or_the_api_key_to_another_host(self):
        self.redirect_elsewhere(r"/api")
        self.redirect_elsewhere(r"/v1/bridge")
        for asynchronous in (False, True):
            for cid, names in self.CREDENTIAL_HEADERS.items():
                with self.subTest(cid, asynchronous=asynchronous):
                    r = self.httpx_get(self.server.url + "/api/%s/hop" % cid, nexus_httpx.NexusAuth(self.client, cid),
                                       asynchronous=asynchronous)
                    sent = [s for s in self.server.seen if s.path == "/api/%s/hop" % cid][-1]
                    self.assertEqual([], [n for n in names if n not in sent.headers])
                    self.assert_nothing_followed(r.json()["headers"], names)
            with self.subTest("bridge", asynchronous=asynchronous):
                r = self.httpx_get(self.client.bridge_url("c_oauth", "/hop"), nexus_httpx.NexusBridgeAuth(self.client),
                                   asynchronous=asynchronous)
                self.assertEqual("nxk_test", [s for s in self.server.seen if s.path == "/v1/bridge/c_oauth/hop"][-1].headers["x-api-key"])
                self.assert_nothing_followed(r.json()["headers"], ["x-api-key"])

    def test_httpx_keeps_the_credentials_on_a_redirect_within_the_provider_s_origin(self):
        self.server.route("GET", r"/api/(\w+)/old", lambda s, m: (301, {"Location": "/api/%s/new" % m.group(1)}, b""))
        for cid in ("c_oauth", "c_header"):
            with self.subTest(cid):
                r = self.httpx_get(self.server.url + "/api/%s/old" % cid, nexus_httpx.NexusAuth(self.client, cid))
                self.assertEqual((200, True), (r.status_code, r.json()["ok"]))

    def test_httpx_following_a_redirect_elsewhere_without_the_hook_raises_instead_of_carrying_on(self):
        self.redirect_elsewhere(r"/api")
        self.redirect_elsewhere(r"/v1/bridge")
        for auth, url in ((nexus_httpx.NexusAuth(self.client, "c_header"), self.server.url + "/api/c_header/hop"),
                          (nexus_httpx.NexusBridgeAuth(self.client), self.client.bridge_url("c_oauth", "/hop"))):
            with self.subTest(repr(auth)):
                with self.assertRaises(ConfigurationError):
                    self.httpx_get(url, auth, hooks=False)
                # Not following (httpx's default) is safe without the hook: the 3xx comes back.
                self.assertEqual(302, self.httpx_get(url, auth, hooks=False, follow=False).status_code)

    def test_the_core_imports_neither_requests_nor_httpx_and_each_adapter_needs_its_library(self):
        code = ("import sys, nexus_sdk, nexus_sdk.urllib; assert 'requests' not in sys.modules and "
                "'httpx' not in sys.modules\n"
                "sys.modules['requests'] = None; sys.modules['httpx'] = None\n"
                "for m in ('nexus_sdk.requests', 'nexus_sdk.httpx'):\n"
                "    try:\n        __import__(m)\n    except ImportError:\n        pass\n"
                "    else:\n        raise SystemExit(m + ' imported without its library')\n")
        done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": SRC}, capture_output=True, text=True)
        self.assertEqual(0, done.returncode, done.stderr)


if __name__ == "__main__":
    unittest.main()
