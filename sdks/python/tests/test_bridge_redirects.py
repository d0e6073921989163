"""Redirects through the Bridge, against two loopback servers: one standing for Nexus's Bridge, one for the provider's
host. The Bridge rewrites a provider's redirect inside its API to its own path (``/v1/bridge/{id}/…``); the client's
``bridge()``, ``requests`` with ``NexusBridgeAuth`` and httpx with the SDK's hook follow that one with the Nexus API key,
and the key reaches nothing else: no other host, no other connection's Bridge, no other path on Nexus."""

import asyncio
import unittest

import httpx
import requests

from nexus_sdk import AttentionRequired, NexusClient, TooManyRedirects
from nexus_sdk import httpx as nexus_httpx
from nexus_sdk import requests as nexus_requests
from support import FakeServer, js, problem

KEY = "nxk_bridge_test"


def redirect(status, location):
    return status, {"Location": location}, b""


class BridgeRedirectTests(unittest.TestCase):
    def setUp(self):
        self.nexus = FakeServer()
        self.provider = FakeServer()
        for server in (self.nexus, self.provider):
            for method in ("GET", "POST", "PUT"):
                server.route(method, r"/.*", lambda s, m: js(200, {"at": s.path, "method": s.method, "body": s.body.decode(),
                                                                    "type": s.headers.get("content-type")}))
        self.client = NexusClient(self.nexus.url, KEY, sleep=lambda s: None)

    def tearDown(self):
        self.client.close()
        self.nexus.close()
        self.provider.close()

    def rewritten_chain(self):
        """The Bridge's answers for a renamed repository: an absolute path, a relative reference, an absolute URL on
        Nexus naming the API's base itself."""
        self.nexus.route("GET", r"/v1/bridge/c_1/repos/old/name", lambda s, m: redirect(301, "/v1/bridge/c_1/repos/new/name?page=2"))
        self.nexus.route("GET", r"/v1/bridge/c_1/repos/new/name\?page=2", lambda s, m: redirect(302, "part-2"))
        self.nexus.route("GET", r"/v1/bridge/c_1/repos/new/part-2", lambda s, m: redirect(307, self.nexus.url + "/v1/bridge/c_1"))
        return ["/v1/bridge/c_1/repos/old/name", "/v1/bridge/c_1/repos/new/name?page=2", "/v1/bridge/c_1/repos/new/part-2", "/v1/bridge/c_1"]

    def elsewhere(self):
        """Locations that are not this connection's Bridge on Nexus."""
        nexus_port = self.nexus.url.rsplit(":", 1)[1]
        return [
            self.provider.url + "/repos/new/name",  # the provider's host outside its API, passed on as written
            self.provider.url + "/v1/bridge/c_1/x",  # a Bridge path on another origin
            "http://localhost:%s/v1/bridge/c_1/x" % nexus_port,  # Nexus's server by another host name
            "/other/place",  # on Nexus, not the Bridge
            "/v1/bridge/c_1x/y",  # another connection whose id starts with this one's
            "/v1/bridge/c_2/y",
            "/v1/bridge/c_1/../c_2/y",
            "/v1/bridge/c_1/%2e%2e/c_2/y",
        ]

    def keys_by_path(self, server):
        return [(s.path, s.headers.get("x-api-key")) for s in server.seen]

    # ---- NexusClient.bridge ----

    def test_the_client_s_bridge_follows_a_redirect_the_bridge_rewrote_to_its_own_path_with_the_api_key(self):
        chain = self.rewritten_chain()
        response = self.client.bridge("c_1", "GET", "/repos/old/name", headers={"X-Caller": "mine"})
        self.assertEqual((200, "/v1/bridge/c_1"), (response.status, response.json()["at"]))
        self.assertEqual([(path, KEY) for path in chain], self.keys_by_path(self.nexus))
        self.assertEqual(["mine"] * 4, [s.headers.get("x-caller") for s in self.nexus.seen])
        self.assertEqual([], self.provider.seen)

    def test_the_client_s_bridge_returns_any_other_redirect_as_the_3xx_its_location_untouched(self):
        for location in self.elsewhere():
            with self.subTest(location):
                self.nexus.route("GET", r"/v1/bridge/c_1/start", lambda s, m, location=location: redirect(302, location))
                before = len(self.nexus.seen)
                response = self.client.bridge("c_1", "GET", "/start")
                self.assertEqual((302, location), (response.status, response.headers.get("Location")))
                self.assertEqual(["/v1/bridge/c_1/start"], [s.path for s in self.nexus.seen[before:]])
        self.assertEqual([], self.provider.seen)

    def test_the_client_s_bridge_changes_the_method_as_fetch_does_and_keeps_the_body_only_with_the_method(self):
        self.nexus.route("POST", r"/v1/bridge/c_1/(30[1-8])", lambda s, m: redirect(int(m.group(1)), "/v1/bridge/c_1/landed"))
        self.nexus.route("PUT", r"/v1/bridge/c_1/(30[1-8])", lambda s, m: redirect(int(m.group(1)), "/v1/bridge/c_1/landed"))
        for method, status, landed in (("POST", 301, ("GET", "", None)), ("POST", 302, ("GET", "", None)), ("PUT", 303, ("GET", "", None)),
                                       ("PUT", 301, ("PUT", "payload", "text/plain")), ("POST", 307, ("POST", "payload", "text/plain")),
                                       ("PUT", 308, ("PUT", "payload", "text/plain"))):
            with self.subTest(method=method, status=status):
                response = self.client.bridge("c_1", method, "/%d" % status, body="payload", headers={"Content-Type": "text/plain"})
                got = response.json()
                self.assertEqual(("/v1/bridge/c_1/landed",) + landed, (got["at"], got["method"], got["body"], got["type"]))
                self.assertEqual(KEY, self.nexus.seen[-1].headers.get("x-api-key"))

    def test_the_client_s_bridge_follows_at_most_20_redirects_and_one_more_raises_as_in_the_other_sdks(self):
        self.nexus.route("GET", r"/v1/bridge/c_1/hop/(\d+)", lambda s, m: redirect(302, "/v1/bridge/c_1/hop/%d" % (int(m.group(1)) + 1))
                         if int(m.group(1)) < 20 else js(200, {"hop": 20}))
        self.nexus.route("GET", r"/v1/bridge/c_1/loop/(\d+)", lambda s, m: redirect(302, "/v1/bridge/c_1/loop/%d" % (int(m.group(1)) + 1)))
        self.assertEqual({"hop": 20}, self.client.bridge("c_1", "GET", "/hop/0").json())
        self.assertEqual(21, len(self.nexus.seen))
        with self.assertRaises(TooManyRedirects) as caught:
            self.client.bridge("c_1", "GET", "/loop/0")
        self.assertEqual((302, "c_1"), (caught.exception.http_status, caught.exception.connection_id))
        self.assertEqual(42, len(self.nexus.seen))
        self.assertEqual("/v1/bridge/c_1/loop/20", self.nexus.seen[-1].path)

    def test_the_client_s_bridge_with_follow_redirects_false_returns_the_bridge_s_3xx(self):
        self.rewritten_chain()
        response = self.client.bridge("c_1", "GET", "/repos/old/name", follow_redirects=False)
        self.assertEqual((301, "/v1/bridge/c_1/repos/new/name?page=2"), (response.status, response.headers.get("Location")))
        self.assertEqual(1, len(self.nexus.seen))

    def test_nexus_s_problem_on_a_followed_hop_is_raised(self):
        self.nexus.route("GET", r"/v1/bridge/c_1/old", lambda s, m: redirect(302, "/v1/bridge/c_1/gone"))
        self.nexus.route("GET", r"/v1/bridge/c_1/gone", lambda s, m: problem(409, "connection_not_active", status="attention_required",
                                                                             error="invalid_grant"))
        with self.assertRaises(AttentionRequired):
            self.client.bridge("c_1", "GET", "/old")

    # ---- requests and httpx, which follow every redirect they are allowed to ----

    def hops_since(self, mark):
        """The requests the two servers got since ``mark`` (a ``mark()``): the Bridge's first."""
        return self.nexus.seen[mark[0]:] + self.provider.seen[mark[1]:]

    def mark(self):
        return len(self.nexus.seen), len(self.provider.seen)

    def assert_key_only_on_the_bridge(self, chain):
        self.assertEqual([(path, KEY) for path in chain], self.keys_by_path(self.nexus)[:len(chain)])

    def test_requests_with_the_bridge_auth_follows_the_bridge_s_own_path_with_the_key_and_anything_else_without(self):
        chain = self.rewritten_chain()
        auth = nexus_requests.NexusBridgeAuth(self.client)
        r = requests.get(self.client.bridge_url("c_1", "/repos/old/name"), auth=auth, timeout=5)
        self.assertEqual((200, "/v1/bridge/c_1"), (r.status_code, r.json()["at"]))
        self.assert_key_only_on_the_bridge(chain)
        for location in self.elsewhere():
            with self.subTest(location):
                self.nexus.route("GET", r"/v1/bridge/c_1/start", lambda s, m, location=location: redirect(302, location))
                mark = self.mark()
                r = requests.get(self.client.bridge_url("c_1", "/start"), auth=auth, timeout=5)
                self.assertEqual(200, r.status_code)  # requests followed it, without the key
                self.assertEqual([("/v1/bridge/c_1/start", KEY), (r.json()["at"], None)],
                                 [(s.path, s.headers.get("x-api-key")) for s in self.hops_since(mark)])

    def httpx_get(self, url, asynchronous):
        auth = nexus_httpx.NexusBridgeAuth(self.client)
        if asynchronous:
            async def run():
                async with httpx.AsyncClient(auth=auth, follow_redirects=True, timeout=5, event_hooks=nexus_httpx.ASYNC_EVENT_HOOKS) as h:
                    return await h.get(url)
            return asyncio.run(run())
        with httpx.Client(auth=auth, follow_redirects=True, timeout=5, event_hooks=nexus_httpx.EVENT_HOOKS) as h:
            return h.get(url)

    def test_httpx_with_the_hook_follows_the_bridge_s_own_path_with_the_key_and_anything_else_without(self):
        chain = self.rewritten_chain()
        for asynchronous in (False, True):
            with self.subTest(asynchronous=asynchronous):
                before = len(self.nexus.seen)
                r = self.httpx_get(self.client.bridge_url("c_1", "/repos/old/name"), asynchronous)
                self.assertEqual((200, "/v1/bridge/c_1"), (r.status_code, r.json()["at"]))
                self.assertEqual([(path, KEY) for path in chain], self.keys_by_path(self.nexus)[before:])
                for location in self.elsewhere():
                    self.nexus.route("GET", r"/v1/bridge/c_1/start", lambda s, m, location=location: redirect(302, location))
                    mark = self.mark()
                    r = self.httpx_get(self.client.bridge_url("c_1", "/start"), asynchronous)
                    self.assertEqual([("/v1/bridge/c_1/start", KEY), (r.json()["at"], None)],
                                     [(s.path, s.headers.get("x-api-key")) for s in self.hops_since(mark)], location)


if __name__ == "__main__":
    unittest.main()
