"""Typed errors and the retry rules: transient failures retried with backoff and jitter for idempotent calls only,
honouring Retry-After; attention_required never retried."""

import json
import socket
import threading
import time
import unittest

from nexus_sdk import (AttentionRequired, ConfigurationError, Conflict, Forbidden, InvalidRequest, NexusClient,
                       NexusError, NexusTimeout, NotActive, NotFound, RateLimited, Unauthorized, Unavailable)
from nexus_sdk._errors import parse_retry_after
from support import HANG_UP, FakeServer, Sleeps, js, problem

TOKEN = {"strategy": {"type": "oauth2"}, "credentials": {"access_token": "at-1"}, "expires_at": None}


class Scripted:
    """Answers with the given replies in turn, then repeats the last one."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls = 0

    def __call__(self, seen, m):
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return reply


class RetryTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.sleeps = Sleeps()
        self.client = NexusClient(self.server.url, "nxk_test", sleep=self.sleeps, rand=lambda: 0.5)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_a_503_with_retry_after_is_retried_after_that_many_seconds_for_an_idempotent_call(self):
        script = Scripted(problem(503, "refresh_unavailable", {"Retry-After": "2"}),
                          problem(503, "refresh_unavailable", {"Retry-After": "1"}), js(200, TOKEN))
        self.server.route("GET", r"/v1/token/c1", script)
        creds = self.client.credentials("c1")
        self.assertEqual("oauth2", creds.type)
        self.assertEqual(3, script.calls)
        self.assertEqual(2, len(self.sleeps.calls))
        self.assertGreaterEqual(self.sleeps.calls[0], 2.0)
        self.assertGreaterEqual(self.sleeps.calls[1], 1.0)
        self.assertLess(self.sleeps.calls[0], 2.0 + self.client.backoff)  # jitter stays small

    def test_only_transient_nexus_codes_of_a_502_503_504_are_retried_through_the_api_and_the_bridge(self):
        cases = [(502, "token_request_failed", 1), (502, "redirect_refused", 1), (502, "aws_assume_role_failed", 1),
                 (502, "upstream_unreachable", 3), (504, "upstream_timeout", 3), (503, "database_unavailable", 3),
                 (503, "refresh_unavailable", 3), (503, "aws_sts_throttled", 3), (502, None, 3)]
        for i, (status, code, attempts) in enumerate(cases):
            with self.subTest(status=status, code=code):
                reply = problem(status, code) if code else (status, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>")
                script = Scripted(reply)
                self.server.route("GET", r"/v1/token/t%d" % i, script)
                with self.assertRaises(Unavailable) as caught:
                    self.client.credentials("t%d" % i)
                self.assertEqual(code, caught.exception.code)
                self.assertEqual(attempts, script.calls)
                if code:  # through the Bridge alike (a provider's own 502 passes through, never retried)
                    bridged = Scripted(reply)
                    self.server.route("GET", r"/v1/bridge/b%d/.*" % i, bridged)
                    with self.assertRaises(Unavailable):
                        self.client.bridge("b%d" % i, "GET", "/item")
                    self.assertEqual(attempts, bridged.calls)

    def test_a_delete_retried_after_a_502_is_done_when_the_retry_finds_it_gone(self):
        # The first DELETE deleted it, and a proxy lost the answer; the retry meets a 404: success.
        script = Scripted((502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"), problem(404, "not_found"))
        self.server.route("DELETE", r"/v1/connections/d1", script)
        self.assertIsNone(self.client.delete_connection("d1"))
        self.assertEqual(2, script.calls)
        # A 404 on the first attempt is still NotFound.
        with self.assertRaises(NotFound):
            self.client.delete_connection("d1")
        self.assertEqual(3, script.calls)

    def test_a_429_is_rate_limited_carrying_retry_after_once_the_retries_are_spent(self):
        script = Scripted(problem(429, "rate_limited", {"Retry-After": "1"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        with self.assertRaises(RateLimited) as caught:
            self.client.get_connection("c1")
        self.assertEqual(1.0, caught.exception.retry_after)
        self.assertEqual(1 + self.client.max_retries, script.calls)

    def test_a_post_is_never_retried_even_when_nexus_is_unavailable(self):
        script = Scripted(problem(503, "refresh_unavailable", {"Retry-After": "1"}))
        self.server.route("POST", r"/v1/request-connection", script)
        with self.assertRaises(Unavailable) as caught:
            self.client.request_connection("ws", "github", "http://localhost/return")
        self.assertEqual(1, script.calls)
        self.assertEqual(1.0, caught.exception.retry_after)
        self.assertEqual([], self.sleeps.calls)

    def test_a_forced_refresh_is_not_retried(self):
        script = Scripted(problem(503, "refresh_unavailable", {"Retry-After": "1"}))
        self.server.route("POST", r"/v1/refresh/c1", script)
        with self.assertRaises(Unavailable):
            self.client.refresh("c1")
        self.assertEqual(1, script.calls)

    def test_attention_required_carries_the_connection_and_reason_and_is_never_retried(self):
        script = Scripted(problem(409, "connection_not_active", status="attention_required", error="invalid_grant",
                                  connection_id="c1"))
        self.server.route("GET", r"/v1/token/c1", script)
        with self.assertRaises(AttentionRequired) as caught:
            self.client.credentials("c1")
        e = caught.exception
        self.assertEqual(("c1", "invalid_grant", "attention_required", 409, "connection_not_active"),
                         (e.connection_id, e.reason, e.connection_status, e.http_status, e.code))
        self.assertIn("c1", str(e))
        self.assertEqual(1, script.calls)
        self.assertEqual([], self.sleeps.calls)

    def test_a_pending_connection_is_not_active_and_not_attention_required(self):
        self.server.route("GET", r"/v1/token/c1", Scripted(problem(409, "connection_not_active", status="pending")))
        with self.assertRaises(NotActive) as caught:
            self.client.credentials("c1")
        self.assertNotIsInstance(caught.exception, AttentionRequired)
        self.assertEqual("pending", caught.exception.connection_status)

    def test_a_retry_after_of_digits_that_are_not_ascii_is_ignored_not_raised(self):
        # "²".isdigit() is True, yet float("²") raises; "١٢" (Arabic-Indic) is no HTTP delay-seconds either.
        self.assertEqual(12.0, parse_retry_after(" 12 "))
        for value in ("\u00b2", "1\u00b2", "\u0661\u0662"):
            with self.subTest(value=value):
                self.assertIsNone(parse_retry_after(value))
        script = Scripted(problem(503, "refresh_unavailable", {"Retry-After": "\u00b2"}))
        self.server.route("GET", r"/v1/connections/sq", script)
        with self.assertRaises(Unavailable) as caught:
            self.client.get_connection("sq")
        self.assertIsNone(caught.exception.retry_after)

    def test_each_status_maps_to_its_own_error_type(self):
        cases = [(problem(404, "not_found"), NotFound), (problem(403, "credentials_not_readable"), Forbidden),
                 (problem(401, "unauthorized"), Unauthorized), (problem(400, "validation_failed"), InvalidRequest),
                 (problem(409, "refresh_not_supported"), Conflict), (problem(504, "upstream_timeout"), Unavailable)]
        for i, (reply, kind) in enumerate(cases):
            with self.subTest(kind.__name__):
                self.server.route("GET", r"/v1/connections/e%d" % i, Scripted(reply))
                with self.assertRaises(kind) as caught:
                    self.client.get_connection("e%d" % i)
                self.assertEqual(reply[0], caught.exception.http_status)

    def test_a_500_from_nexus_is_a_nexus_error_with_its_status_and_code_not_unavailable_and_502_503_504_are_unavailable(self):
        # A 500 (or another 5xx but 502/503/504) is the generic error, as Go's *APIError and .NET's NexusException;
        # without a problem body (a proxy's page) it has no code, as in Go and .NET.
        bare = (500, {"Content-Type": "text/html"}, b"<h1>oops</h1>")
        for name, reply, code in (("c500", problem(500, "internal_error"), "internal_error"),
                                  ("c501", problem(501, "not_implemented"), "not_implemented"), ("bare", bare, None)):
            with self.subTest(name):
                script = Scripted(reply)
                self.server.route("GET", r"/v1/connections/%s" % name, script)
                with self.assertRaises(NexusError) as caught:
                    self.client.get_connection(name)
                self.assertIs(NexusError, type(caught.exception))
                self.assertEqual((reply[0], code), (caught.exception.http_status, caught.exception.code))
                self.assertEqual(1, script.calls)  # not retried
        for status, code in ((502, "upstream_unreachable"), (503, "refresh_unavailable"), (504, "upstream_timeout")):
            with self.subTest(status):
                self.server.route("GET", r"/v1/connections/u%d" % status, Scripted(problem(status, code)))
                with self.assertRaises(Unavailable) as caught:
                    self.client.get_connection("u%d" % status)
                self.assertEqual((status, code), (caught.exception.http_status, caught.exception.code))

    def test_a_redirect_from_nexus_s_api_is_a_nexus_error_and_the_api_key_never_reaches_the_host_it_names(self):
        # As Go's *APIError and TypeScript's RequestError: a 3xx is not followed (X-API-Key goes to Nexus only), and
        # its body is not the answer.
        elsewhere = FakeServer()
        self.addCleanup(elsewhere.close)
        elsewhere.route("GET", r"/.*", lambda seen, m: js(200, TOKEN))
        elsewhere.route("POST", r"/.*", lambda seen, m: js(200, {"connection_id": "c1", "status": "active"}))
        token = Scripted((302, {"Location": elsewhere.url + "/v1/token/c1"}, b""))
        refresh = Scripted((307, {"Location": elsewhere.url + "/v1/refresh/c1"}, b""))
        self.server.route("GET", r"/v1/token/c1", token)
        self.server.route("POST", r"/v1/refresh/c1", refresh)
        for name, call, status in (("credentials", lambda: self.client.credentials("c1"), 302),
                                   ("refresh", lambda: self.client.refresh("c1"), 307)):
            with self.subTest(name):
                with self.assertRaises(NexusError) as caught:
                    call()
                self.assertIs(NexusError, type(caught.exception))
                self.assertEqual(status, caught.exception.http_status)
        self.assertEqual((1, 1), (token.calls, refresh.calls))  # not retried
        self.assertEqual([], [s.headers.get("x-api-key") for s in elsewhere.seen])

    def test_the_bridge_retries_nexus_own_transient_problems_for_idempotent_methods_only(self):
        get = Scripted(problem(503, "refresh_unavailable", {"Retry-After": "1"}), js(200, {"ok": True}))
        post = Scripted(problem(503, "refresh_unavailable", {"Retry-After": "1"}), js(200, {"ok": True}))
        self.server.route("GET", r"/v1/bridge/c1/items", get)
        self.server.route("POST", r"/v1/bridge/c1/items", post)
        self.assertEqual(200, self.client.bridge("c1", "GET", "/items").status)
        self.assertEqual(2, get.calls)
        with self.assertRaises(Unavailable):
            self.client.bridge("c1", "POST", "/items", body=b"{}")
        self.assertEqual(1, post.calls)

    def test_a_providers_own_503_through_the_bridge_is_returned_not_retried(self):
        script = Scripted((503, {"Content-Type": "application/json", "Retry-After": "1"}, b'{"busy":true}'))
        self.server.route("GET", r"/v1/bridge/c1/busy", script)
        self.assertEqual(503, self.client.bridge("c1", "GET", "/busy").status)
        self.assertEqual(1, script.calls)

    def test_a_retry_after_beyond_the_longest_wait_is_raised_at_once(self):
        script = Scripted(problem(503, "aws_sts_throttled", {"Retry-After": "3600"}))
        self.server.route("GET", r"/v1/token/c1", script)
        with self.assertRaises(Unavailable) as caught:
            self.client.credentials("c1")
        self.assertEqual(3600.0, caught.exception.retry_after)
        self.assertEqual(1, script.calls)

    def test_an_unreachable_nexus_is_unavailable_after_retries_with_growing_jittered_delays(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there
        client = NexusClient("http://127.0.0.1:%d" % port, "nxk_test", sleep=self.sleeps, max_retries=3)
        with self.assertRaises(Unavailable) as caught:
            client.get_connection("c1")
        self.assertIsNone(caught.exception.http_status)
        self.assertEqual(3, len(self.sleeps.calls))
        for attempt, delay in enumerate(self.sleeps.calls):
            window = client.backoff * 2 ** attempt
            self.assertTrue(window / 2 <= delay <= window, (attempt, delay))

    def test_backoff_without_retry_after_doubles_up_to_the_cap_with_jitter(self):
        for rand, expected in ((0.0, [0.125, 0.25, 0.5, 4.0]), (1.0, [0.25, 0.5, 1.0, 8.0])):
            client = NexusClient("http://127.0.0.1:1", "k", rand=lambda r=rand: r)
            self.assertEqual(expected, [client._backoff_delay(a, None) for a in (0, 1, 2, 10)])


class ClientTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.sleeps = Sleeps()
        self.client = NexusClient(self.server.url, "nxk_test", sleep=self.sleeps)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_the_client_reads_its_url_and_key_from_the_environment(self):
        import os
        old = {k: os.environ.get(k) for k in ("NEXUS_URL", "NEXUS_API_KEY")}
        try:
            os.environ["NEXUS_URL"], os.environ["NEXUS_API_KEY"] = self.server.url + "/", "nxk_env"
            self.server.route("GET", r"/v1/connections/c1", lambda s, m: js(200, {"connection_id": "c1", "status": "active"}))
            client = NexusClient()
            self.assertEqual(self.server.url, client.url)
            client.get_connection("c1")
            self.assertEqual("nxk_env", self.server.seen[-1].headers["x-api-key"])
            del os.environ["NEXUS_API_KEY"]
            with self.assertRaises(ConfigurationError):
                NexusClient()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def test_request_get_list_and_delete_use_the_documented_routes(self):
        self.server.route("POST", r"/v1/request-connection",
                          lambda s, m: js(201, {"auth_url": "http://p/authorize?state=s", "connection_id": "c1"}))
        self.server.route("GET", r"/v1/connections/c1", lambda s, m: js(200, {"connection_id": "c1", "status": "pending"}))
        self.server.route("GET", r"/v1/connections\?workspace_id=ws&limit=5",
                          lambda s, m: js(200, {"connections": [{"connection_id": "c1", "status": "pending"}]}))
        self.server.route("DELETE", r"/v1/connections/c1", lambda s, m: (204, {}, b""))
        req = self.client.request_connection("ws", "github", "http://localhost/return", scopes=["repo"])
        self.assertEqual(("http://p/authorize?state=s", "c1"), (req.auth_url, req.connection_id))
        import json
        self.assertEqual({"workspace_id": "ws", "provider_name": "github", "return_url": "http://localhost/return",
                          "scopes": ["repo"]}, json.loads(self.server.seen[-1].body))
        self.assertEqual("pending", self.client.get_connection("c1").status)
        self.assertEqual(["c1"], [c.connection_id for c in self.client.list_connections("ws", limit=5)])
        self.client.delete_connection("c1")
        self.assertEqual("DELETE", self.server.seen[-1].method)

    def test_wait_until_active_polls_until_the_connection_is_active(self):
        script = Scripted(*[js(200, {"connection_id": "c1", "status": s}) for s in ("pending", "pending", "active")])
        self.server.route("GET", r"/v1/connections/c1", script)
        self.assertTrue(self.client.wait_until_active("c1", timeout=30).is_active)
        self.assertEqual(3, script.calls)
        self.assertEqual(2, len(self.sleeps.calls))

    def test_wait_until_active_raises_attention_required_or_not_active_at_once(self):
        self.server.route("GET", r"/v1/connections/c1",
                          lambda s, m: js(200, {"connection_id": "c1", "status": "attention_required", "error": "invalid_grant"}))
        self.server.route("GET", r"/v1/connections/c2",
                          lambda s, m: js(200, {"connection_id": "c2", "status": "failed", "error": "access_denied"}))
        with self.assertRaises(AttentionRequired) as caught:
            self.client.wait_until_active("c1")
        self.assertEqual("invalid_grant", caught.exception.reason)
        with self.assertRaises(NotActive) as caught:
            self.client.wait_until_active("c2")
        self.assertEqual(("failed", "access_denied"), (caught.exception.connection_status, caught.exception.reason))

    def test_wait_until_active_polls_through_a_poll_that_timed_out_and_one_nexus_did_not_answer(self):
        from nexus_sdk import HttpResponse

        class Flaky:
            """A timeout, then a refused connection, then the connection active."""

            def __init__(self):
                self.sent = 0

            def send(self, request, timeout):
                self.sent += 1
                if self.sent == 1:
                    raise socket.timeout("timed out")
                if self.sent == 2:
                    raise ConnectionRefusedError("refused")
                return HttpResponse(200, {"Content-Type": "application/json"},
                                    b'{"connection_id": "c1", "status": "active"}')

        transport = Flaky()
        client = NexusClient("http://127.0.0.1:1", "k", transport=transport, sleep=self.sleeps, max_retries=0)
        self.assertTrue(client.wait_until_active("c1", timeout=30).is_active)
        self.assertEqual(3, transport.sent)

    def test_wait_until_active_times_out(self):
        self.server.route("GET", r"/v1/connections/c1", lambda s, m: js(200, {"connection_id": "c1", "status": "pending"}))
        client = NexusClient(self.server.url, "k")  # real sleeps
        with self.assertRaises(NexusTimeout):
            client.wait_until_active("c1", timeout=0.3, poll_interval=0.05)

    def test_the_bridge_returns_the_providers_answer_and_raises_nexus_own_problems(self):
        self.server.route("GET", r"/v1/bridge/c1/user\?x=1", lambda s, m: (404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'))
        self.server.route("GET", r"/v1/bridge/c2/user", lambda s, m: problem(409, "connection_not_active",
                                                                              status="attention_required", error="invalid_grant"))
        response = self.client.bridge("c1", "GET", "/user", params={"x": "1"})
        self.assertEqual(404, response.status)
        self.assertEqual("nxk_test", self.server.seen[-1].headers["x-api-key"])
        with self.assertRaises(AttentionRequired):
            self.client.bridge("c2", "GET", "user")


class KeptAliveConnectionTests(unittest.TestCase):
    """The default transport's own second sending, on a kept-alive connection that broke: idempotent methods only."""

    ACTIVE = {"connection_id": "c1", "status": "active"}

    def setUp(self):
        self.server = FakeServer()
        self.client = NexusClient(self.server.url, "nxk_test", sleep=Sleeps(), max_retries=0)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_a_post_is_not_sent_again_when_its_kept_alive_connection_breaks_under_it(self):
        # The second POST reaches Nexus on the kept-alive connection, which closes without answering: Nexus may have
        # acted on it, so it is not sent again (it was, "once, whatever the method").
        script = Scripted(js(200, self.ACTIVE), HANG_UP, js(200, self.ACTIVE))
        self.server.route("POST", r"/v1/refresh/c1", script)
        self.client.refresh("c1")
        with self.assertRaises(Unavailable) as caught:
            self.client.refresh("c1")
        self.assertIsNone(caught.exception.http_status)
        self.assertEqual(2, script.calls)

    def test_a_get_is_sent_again_once_when_its_kept_alive_connection_breaks_under_it(self):
        script = Scripted(js(200, self.ACTIVE), HANG_UP, js(200, self.ACTIVE))
        self.server.route("GET", r"/v1/connections/c1", script)
        self.client.get_connection("c1")
        self.assertEqual("active", self.client.get_connection("c1").status)  # max_retries=0: the transport's own
        self.assertEqual(3, script.calls)

    def test_a_kept_alive_connection_closed_while_idle_is_replaced_before_a_post_goes_on_it(self):
        # A server that answers with keep-alive and then closes the connection (as Nexus does after its keep-alive
        # timeout): the next POST goes on a new connection and succeeds.
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        closed, requests = threading.Event(), []

        def serve():
            for _ in range(2):
                conn, _ = listener.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    requests.append(data.split(b"\r\n", 1)[0])
                    body = json.dumps(self.ACTIVE).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                closed.set()

        threading.Thread(target=serve, daemon=True).start()
        client = NexusClient("http://127.0.0.1:%d" % listener.getsockname()[1], "nxk_test", max_retries=0)
        self.addCleanup(client.close)
        client.refresh("c1")
        self.assertTrue(closed.wait(5))
        time.sleep(0.05)  # the server's FIN reaches the client
        self.assertEqual("active", client.refresh("c1").status)
        self.assertEqual([b"POST /v1/refresh/c1 HTTP/1.1"] * 2, requests)


if __name__ == "__main__":
    unittest.main()
