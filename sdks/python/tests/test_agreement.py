"""The cases the four SDKs classify alike (the README's "Same answer, same error" table); each test has the same
sentence as its name in the Go, TypeScript and .NET suites."""

import asyncio
import email.utils
import json
import threading
import time
import unittest

from nexus_sdk import (AttentionRequired, Conflict, ConnectionFailed, NexusClient, NexusError, NexusTimeout,
                       NotActive, RateLimited, TooManyRedirects, Unavailable)
from nexus_sdk.aio import AsyncNexusClient
from support import HANG_UP, Clock, FakeServer, Sleeps, js, problem
from test_apply import ADAPTERS, Provider, call


class FakeTime:
    """A monotonic clock that only moves when the client sleeps: no real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Scripted:
    """Answers with the given replies in turn, then repeats the last one."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls = 0

    def __call__(self, seen, m):
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return reply


class AgreementTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.time = FakeTime()
        # No retries inside one call: each poll is one GET.
        self.client = NexusClient(self.server.url, "nxk_test", sleep=self.time.sleep, monotonic=self.time.monotonic,
                                  max_retries=0)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_aws_sts_throttled_is_unavailable_not_rate_limited_and_carries_retry_after(self):
        self.server.route("GET", r"/v1/token/c1", Scripted(problem(503, "aws_sts_throttled", {"Retry-After": "5"},
                                                                   retry_after=5)))
        with self.assertRaises(Unavailable) as caught:
            self.client.credentials("c1")
        e = caught.exception
        self.assertNotIsInstance(e, RateLimited)
        self.assertEqual((503, "aws_sts_throttled", 5.0), (e.http_status, e.code, e.retry_after))

    def test_connection_failed_is_not_active_with_status_failed_and_the_connection_id(self):
        # What Nexus sends: the catalog's problem, with RFC 9457's numeric status and no connection id.
        self.server.route("POST", r"/v1/connections/c9/credentials", Scripted(problem(409, "connection_failed")))
        with self.assertRaises(NotActive) as caught:
            self.client.submit_credentials("c9", {"api_key": "k"})
        e = caught.exception
        self.assertNotIsInstance(e, AttentionRequired)
        self.assertIsInstance(e, ConnectionFailed)
        self.assertIsInstance(e, Conflict)  # what this answer raised before
        self.assertEqual(("failed", "c9", "connection_failed", 409),
                         (e.connection_status, e.connection_id, e.code, e.http_status))
        self.assertIn("c9 is failed", str(e))

    def test_wait_until_active_keeps_polling_through_a_transient_error_until_the_connection_is_active(self):
        script = Scripted(problem(503, "database_unavailable", {"Retry-After": "2"}), problem(429, "rate_limited"),
                          js(200, {"connection_id": "c1", "status": "active"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        self.assertTrue(self.client.wait_until_active("c1", timeout=60, poll_interval=0.5).is_active)
        self.assertEqual(3, script.calls)
        self.assertEqual(2.0, self.time.sleeps[0])  # not sooner than Retry-After

    def test_wait_until_active_raises_the_last_transient_error_when_the_deadline_passes(self):
        script = Scripted(problem(503, "database_unavailable"))
        self.server.route("GET", r"/v1/connections/c1", script)
        with self.assertRaises(Unavailable) as caught:
            self.client.wait_until_active("c1", timeout=3, poll_interval=0.5)
        self.assertNotIsInstance(caught.exception, NexusTimeout)
        self.assertEqual("database_unavailable", caught.exception.code)
        self.assertGreaterEqual(script.calls, 2)
        self.assertAlmostEqual(3.0, sum(self.time.sleeps))

    def test_wait_until_active_keeps_polling_while_a_reconnect_waits_for_consent(self):
        # A reconnect keeps an attention_required or active status until the user completes the new consent.
        script = Scripted(js(200, {"connection_id": "c1", "status": "attention_required", "reconnecting": True,
                                   "error": "invalid_grant"}),
                          js(200, {"connection_id": "c1", "status": "active", "reconnecting": True}),
                          js(200, {"connection_id": "c1", "status": "active", "reconnecting": False}))
        self.server.route("GET", r"/v1/connections/c1", script)
        connection = self.client.wait_until_active("c1", timeout=60, poll_interval=0.5)
        self.assertTrue(connection.is_active)
        self.assertFalse(connection.reconnecting)
        self.assertEqual(3, script.calls)

    def test_wait_until_active_ends_with_attention_required_once_a_failed_reconnect_clears_reconnecting(self):
        script = Scripted(js(200, {"connection_id": "c1", "status": "attention_required", "reconnecting": True}),
                          js(200, {"connection_id": "c1", "status": "attention_required", "reconnecting": False,
                                   "error": "invalid_grant"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        with self.assertRaises(AttentionRequired):
            self.client.wait_until_active("c1", timeout=60, poll_interval=0.5)
        self.assertEqual(2, script.calls)

    def test_the_async_wait_until_active_keeps_polling_while_a_reconnect_waits_for_consent(self):
        script = Scripted(js(200, {"connection_id": "c1", "status": "active", "reconnecting": True}),
                          js(200, {"connection_id": "c1", "status": "active"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        client = AsyncNexusClient(client=self.client)
        active = asyncio.run(client.wait_until_active("c1", timeout=10, poll_interval=0.001))
        self.assertFalse(active.reconnecting)
        self.assertEqual(2, script.calls)

    def test_wait_until_active_ends_at_once_when_a_poll_is_answered_with_a_500(self):
        script = Scripted(problem(500, "internal_error"))
        self.server.route("GET", r"/v1/connections/c1", script)
        # A minute to wait: polling through the 500 would show as more polls and sleeps.
        with self.assertRaises(NexusError) as caught:
            self.client.wait_until_active("c1", timeout=60, poll_interval=0.5)
        # The generic error, as Go's *APIError and .NET's NexusException: not Unavailable, not a RetryableError.
        self.assertIs(NexusError, type(caught.exception))
        self.assertEqual((500, "internal_error"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(1, script.calls)
        self.assertEqual([], self.time.sleeps)

    def test_wait_until_active_ends_at_once_when_a_poll_is_answered_with_a_502_of_a_permanent_code(self):
        script = Scripted(problem(502, "token_request_failed", {"Retry-After": "0"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        # A minute to wait: polling through the refusal would show as more polls and sleeps.
        with self.assertRaises(Unavailable) as caught:
            self.client.wait_until_active("c1", timeout=60, poll_interval=0.5)
        self.assertNotIsInstance(caught.exception, NexusTimeout)
        self.assertEqual((502, "token_request_failed"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(1, script.calls)
        self.assertEqual([], self.time.sleeps)

    def test_wait_until_active_keeps_polling_through_a_502_without_a_code_or_with_a_transient_one_and_through_reconnecting(self):
        script = Scripted(problem(502, "upstream_unreachable", {"Retry-After": "0"}),
                          (502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"),
                          problem(504, "upstream_timeout"),
                          js(200, {"connection_id": "c1", "status": "active", "reconnecting": True}),
                          js(200, {"connection_id": "c1", "status": "active"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        connection = self.client.wait_until_active("c1", timeout=60, poll_interval=0.5)
        self.assertTrue(connection.is_active)
        self.assertFalse(connection.reconnecting)
        self.assertEqual(5, script.calls)

    def test_the_async_wait_until_active_ends_at_once_when_a_poll_is_answered_with_a_502_of_a_permanent_code(self):
        script = Scripted(problem(502, "token_request_failed", {"Retry-After": "0"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        client = AsyncNexusClient(client=self.client)
        with self.assertRaises(Unavailable) as caught:
            asyncio.run(client.wait_until_active("c1", timeout=10, poll_interval=0.001))
        self.assertEqual((502, "token_request_failed"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(1, script.calls)

    def test_a_21st_redirect_through_the_bridge_is_an_error_as_it_is_directly(self):
        elsewhere = FakeServer()
        self.addCleanup(elsewhere.close)

        def chain(seen, m):
            # /v1/bridge/c1/{chain}/N redirects to .../N+1 on the Bridge: "twenty" up to 20, "endless" always, "leaving"
            # up to 20 and then off the Bridge.
            name, hop = m.group(1), int(m.group(2))
            if name == "endless" or hop < 20:
                return 302, {"Location": "/v1/bridge/c1/%s/%d" % (name, hop + 1)}, b""
            if name == "leaving":
                return 302, {"Location": elsewhere.url + "/away"}, b""
            return js(200, {"hop": hop})

        self.server.route("GET", r"/v1/bridge/c1/(\w+)/(\d+)", chain)
        self.assertEqual({"hop": 20}, self.client.bridge("c1", "GET", "/twenty/0").json())
        self.assertEqual(21, len(self.server.seen))
        with self.assertRaises(TooManyRedirects) as caught:
            self.client.bridge("c1", "GET", "/endless/0")
        self.assertEqual(302, caught.exception.http_status)
        self.assertIn("more than 20", str(caught.exception))
        self.assertEqual(42, len(self.server.seen))  # /endless/0 and 20 redirects followed; the 21st is not
        self.assertEqual("/v1/bridge/c1/endless/20", self.server.seen[-1].path)
        # Where the Bridge's redirect goes is asked before how many there were: a 21st off the Bridge comes back.
        leaving = self.client.bridge("c1", "GET", "/leaving/0")
        self.assertEqual((302, elsewhere.url + "/away"), (leaving.status, leaving.headers.get("Location")))
        self.assertEqual(63, len(self.server.seen))
        self.assertEqual([], elsewhere.seen)

    def test_a_transient_nexus_problem_through_the_bridge_is_retried_for_an_idempotent_method_but_not_for_a_post_a_providers_503_or_a_long_retry_after(self):
        # Nexus's Bridge: /flaky answers 429 (Nexus's rate limit), then 503 database_unavailable, then the provider's
        # 200; /refused and /later always answer 503 refresh_unavailable (Retry-After 0 and 3600); /provider is the
        # provider's own 503 problem, which the Bridge passes on.
        flaky = Scripted(problem(429, "rate_limited", {"Retry-After": "0"}),
                         problem(503, "database_unavailable", {"Retry-After": "0"}), js(200, {}))
        self.server.route("PUT", r"/v1/bridge/c1/flaky", flaky)
        self.server.route("POST", r"/v1/bridge/c1/refused", lambda seen, m: problem(503, "refresh_unavailable", {"Retry-After": "0"}))
        self.server.route("GET", r"/v1/bridge/c1/later", lambda seen, m: problem(503, "refresh_unavailable", {"Retry-After": "3600"}))
        self.server.route("GET", r"/v1/bridge/c1/provider", lambda seen, m: (
            503, {"Content-Type": "application/problem+json", "Retry-After": "0"},
            b'{"type":"https://api.provider.test/problems/maintenance","title":"t","status":503}'))
        client = NexusClient(self.server.url, "nxk_test", sleep=self.time.sleep, monotonic=self.time.monotonic)

        def sent(name):
            return sum(1 for s in self.server.seen if s.path.endswith("/" + name))

        self.assertEqual(200, client.bridge("c1", "PUT", "/flaky", body=b'{"a":1}').status)
        self.assertEqual(3, sent("flaky"))
        self.assertEqual([b'{"a":1}'] * 3, [s.body for s in self.server.seen])  # the body, sent again each time
        with self.assertRaises(Unavailable) as refused:
            client.bridge("c1", "POST", "/refused", body=b"{}")
        self.assertEqual("refresh_unavailable", refused.exception.code)
        self.assertEqual(1, sent("refused"))
        provider = client.bridge("c1", "GET", "/provider")
        self.assertEqual(503, provider.status)
        self.assertIn(b"maintenance", provider.body)
        self.assertEqual(1, sent("provider"))
        with self.assertRaises(Unavailable) as later:
            client.bridge("c1", "GET", "/later")
        self.assertEqual(3600, later.exception.retry_after)
        self.assertEqual(1, sent("later"))

    def test_the_async_wait_until_active_keeps_polling_through_a_transient_error(self):
        script = Scripted(problem(503, "database_unavailable"), js(200, {"connection_id": "c1", "status": "active"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        client = AsyncNexusClient(client=self.client)
        active = asyncio.run(client.wait_until_active("c1", timeout=10, poll_interval=0.001))
        self.assertTrue(active.is_active)
        self.assertEqual(2, script.calls)

    def test_the_async_wait_until_active_ends_at_once_when_a_poll_is_answered_with_a_500(self):
        script = Scripted(problem(500, "internal_error"))
        self.server.route("GET", r"/v1/connections/c1", script)
        client = AsyncNexusClient(client=self.client)
        # 3 s to wait (real time here): polling through the 500 would show as more polls.
        with self.assertRaises(NexusError) as caught:
            asyncio.run(client.wait_until_active("c1", timeout=3, poll_interval=0.001))
        self.assertIs(NexusError, type(caught.exception))  # not Unavailable, not NexusTimeout
        self.assertEqual((500, "internal_error"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(1, script.calls)


    def _cached_then(self, failure):
        """A client whose clock the test sets, holding cached credentials (expiring in 10 minutes) that are due for a
        fetch (30 s before they expire), and whose next fetches are answered with ``failure``."""
        clock = Clock(1_700_000_000.0)
        expires_at = clock.now + 600
        token = js(200, {"strategy": {"type": "oauth2"}, "credentials": {"access_token": "tok-1"}, "expires_at": expires_at},
                   {"Connection": "close"})
        script = Scripted(token, failure)
        self.server.route("GET", r"/v1/token/c1", script)
        client = NexusClient(self.server.url, "nxk_test", clock=clock, sleep=self.time.sleep, max_retries=0)
        self.addCleanup(client.close)
        self.assertEqual("tok-1", client.credentials("c1").secret("access_token"))
        clock.now = expires_at - 30
        return client, clock, expires_at, script

    def test_cached_credentials_that_have_not_expired_are_served_when_their_fetch_fails_transiently(self):
        close = {"Connection": "close", "Retry-After": "0"}
        failures = [
            ("503 database_unavailable", problem(503, "database_unavailable", close)),
            ("a proxy's 502 (no Nexus code)", (502, {"Content-Type": "text/html", "Connection": "close"}, b"<html>Bad Gateway</html>")),
            ("429", problem(429, "rate_limited", close)),
            ("no answer", HANG_UP),
        ]
        for what, failure in failures:
            with self.subTest(what):
                self.server.routes.clear()
                client, clock, expires_at, script = self._cached_then(failure)
                self.assertEqual("tok-1", client.credentials("c1").secret("access_token"))
                self.assertGreaterEqual(script.calls, 2)
                clock.now = expires_at + 1  # expired: the failure is raised
                with self.assertRaises((Unavailable, RateLimited)):
                    client.credentials("c1")

    def test_cached_credentials_are_not_served_when_their_fetch_is_answered_with_a_502_of_a_permanent_code(self):
        # Due for a fetch, not expired: a transient failure would serve tok-1 (the test above).
        client, _, _, script = self._cached_then(problem(502, "token_request_failed"))
        with self.assertRaises(Unavailable) as caught:
            client.credentials("c1")
        self.assertEqual((502, "token_request_failed"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(2, script.calls)


    def test_a_problem_without_a_code_takes_it_from_its_urn_nexus_problem_type(self):
        def typed(http_status, type_, **extra):
            body = {"type": type_, "title": "t", "status": http_status}
            body.update(extra)  # a 409 connection_not_active's "status" is the connection's
            return lambda seen, m: (http_status, {"Content-Type": "application/problem+json"}, json.dumps(body).encode())

        self.server.route("GET", r"/v1/token/attention", typed(409, "urn:nexus:problem:connection_not_active",
                                                             status="attention_required", connection_id="attention",
                                                             error="invalid_grant"))
        self.server.route("GET", r"/v1/token/refused", typed(502, "urn:nexus:problem:token_request_failed"))
        self.server.route("GET", r"/v1/token/empty", typed(400, "urn:nexus:problem:validation_failed", code=""))
        self.server.route("GET", r"/v1/token/both", typed(400, "urn:nexus:problem:validation_failed", code="unknown_provider"))
        self.server.route("GET", r"/v1/token/url", typed(400, "https://nexus.test/problems/validation_failed"))
        self.server.route("GET", r"/v1/token/blank", typed(400, "about:blank"))
        client = NexusClient(self.server.url, "nxk_test", sleep=self.time.sleep)  # the default retries
        self.addCleanup(client.close)

        def fails(connection_id):
            with self.assertRaises(NexusError) as caught:
                client.credentials(connection_id)
            return caught.exception

        attention = fails("attention")
        self.assertIsInstance(attention, AttentionRequired)
        self.assertEqual(("connection_not_active", "invalid_grant"), (attention.code, attention.reason))
        refused = fails("refused")
        self.assertIsInstance(refused, Unavailable)
        self.assertEqual("token_request_failed", refused.code)
        self.assertEqual(1, self.server.count("GET", "/v1/token/refused"))  # a refusal: not sent again
        self.assertEqual("validation_failed", fails("empty").code)
        self.assertEqual("unknown_provider", fails("both").code)  # the code wins
        self.assertIsNone(fails("url").code)  # only the URN names a code
        self.assertIsNone(fails("blank").code)


class Provider401Tests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.provider = Provider(self.server)
        self.provider.reject_all = True
        self.client = NexusClient(self.server.url, "nxk_test", sleep=lambda s: None)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_a_provider_401_whose_forced_refresh_is_unavailable_fails_with_the_unavailable_error(self):
        self.provider.refresh_reply = problem(503, "refresh_unavailable", {"Retry-After": "7"}, connection_id="c_oauth")
        for adapter in ADAPTERS:
            with self.subTest(adapter=adapter):
                calls = self.server.count("GET", "/api/c_oauth")
                refreshes = self.server.count("POST", "/v1/refresh/")
                with self.assertRaises(Unavailable) as caught:
                    call(adapter, self.client, "c_oauth", self.server.url + "/api/c_oauth/x")
                self.assertEqual(("refresh_unavailable", 7.0), (caught.exception.code, caught.exception.retry_after))
                self.assertEqual(calls + 1, self.server.count("GET", "/api/c_oauth"))
                self.assertEqual(refreshes + 1, self.server.count("POST", "/v1/refresh/"))

    def test_a_provider_401_on_a_connection_with_nothing_to_refresh_returns_the_providers_401(self):
        self.provider.refresh_reply = problem(409, "refresh_not_supported", connection_id="c_oauth", status="active")
        for adapter in ADAPTERS:
            with self.subTest(adapter=adapter):
                refreshes = self.server.count("POST", "/v1/refresh/")
                reads = self.server.count("GET", "/v1/token/")
                calls = self.server.count("GET", "/api/c_oauth")
                status, _ = call(adapter, self.client, "c_oauth", self.server.url + "/api/c_oauth/x")
                self.assertEqual(401, status)
                self.assertEqual(refreshes + 1, self.server.count("POST", "/v1/refresh/"))
                # One read (the cache is dropped after the 401, so each call reads once): none after the refusal.
                self.assertEqual(reads + 1, self.server.count("GET", "/v1/token/"))
                self.assertEqual(calls + 1, self.server.count("GET", "/api/c_oauth"))

    def test_a_provider_401_is_not_retried_when_nexus_hands_back_the_same_credential(self):
        # An OAuth 2.0 token that the forced refresh left as it was, and an API key that was not captured anew.
        self.provider.refresh_reply = js(200, {"connection_id": "c_oauth", "status": "active"})
        for cid, refreshed in (("c_oauth", 1), ("c_header", 0)):
            for adapter in ADAPTERS:
                with self.subTest(adapter=adapter, strategy=cid):
                    self.client.invalidate()
                    refreshes = self.server.count("POST", "/v1/refresh/")
                    reads = self.server.count("GET", "/v1/token/")
                    calls = self.server.count("GET", "/api/" + cid)
                    status, _ = call(adapter, self.client, cid, self.server.url + "/api/%s/x" % cid)
                    self.assertEqual(401, status)
                    self.assertEqual(calls + 1, self.server.count("GET", "/api/" + cid))
                    self.assertEqual(reads + 2, self.server.count("GET", "/v1/token/"))  # the first, then one again
                    self.assertEqual(refreshes + refreshed, self.server.count("POST", "/v1/refresh/"))


class RetryPolicyTests(unittest.TestCase):
    """The retry policy (the README's "Retries"), with the default options: each test has the same sentence as its
    name in the Go, TypeScript and .NET suites. Waits go to a recording sleep (no real waiting)."""

    def setUp(self):
        self.server = FakeServer()
        self.sleeps = Sleeps()
        self.client = NexusClient(self.server.url, "nxk_test", sleep=self.sleeps)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_the_default_policy_is_3_attempts_from_0_25_s_and_waits_for_a_retry_after_of_at_most_10_s(self):
        self.assertEqual((2, 0.25, 10.0), (self.client.max_retries, self.client.backoff, self.client.max_retry_wait))

    def test_a_500_internal_error_from_nexus_is_not_retried(self):
        self.server.route("GET", r"/v1/connections/c1", lambda s, m: problem(500, "internal_error"))
        self.server.route("GET", r"/v1/bridge/c1/item", lambda s, m: problem(500, "internal_error"))
        with self.assertRaises(NexusError) as caught:
            self.client.get_connection("c1")
        # The generic error, as Go's *APIError and .NET's NexusException: not Unavailable, not a RetryableError.
        self.assertIs(NexusError, type(caught.exception))
        self.assertEqual((500, "internal_error"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(1, self.server.count("GET", "/v1/connections/c1"))
        with self.assertRaises(NexusError) as caught:
            self.client.bridge("c1", "GET", "/item")
        self.assertIs(NexusError, type(caught.exception))
        self.assertEqual((500, "internal_error"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(1, self.server.count("GET", "/v1/bridge/c1/item"))
        self.assertEqual([], self.sleeps.calls)

    def test_a_503_with_retry_after_1_is_retried_after_a_second_and_the_second_answer_wins(self):
        script = Scripted(problem(503, "refresh_unavailable", {"Retry-After": "1"}),
                          js(200, {"connection_id": "c1", "status": "active"}))
        self.server.route("GET", r"/v1/connections/c1", script)
        self.assertEqual("active", self.client.get_connection("c1").status)
        self.assertEqual(2, script.calls)
        self.assertEqual(1, len(self.sleeps.calls))
        self.assertTrue(1.0 <= self.sleeps.calls[0] <= 1.0 + self.client.backoff, self.sleeps.calls)

    def test_a_third_transient_failure_gives_up_after_3_attempts_with_the_last_error(self):
        # 502, 503, then 504: the last one is the error; no Retry-After, so the backoff (0.25 s, then 0.5 s, jittered)
        # applies.
        answers = (problem(502, "upstream_unreachable"), problem(503, "database_unavailable"),
                   problem(504, "upstream_timeout"))
        api, bridged = Scripted(*answers), Scripted(*answers)
        self.server.route("GET", r"/v1/connections/c1", api)
        self.server.route("GET", r"/v1/bridge/c1/item", bridged)
        with self.assertRaises(Unavailable) as caught:
            self.client.get_connection("c1")
        self.assertEqual((504, "upstream_timeout"), (caught.exception.http_status, caught.exception.code))
        self.assertEqual(3, api.calls)
        with self.assertRaises(Unavailable) as caught:
            self.client.bridge("c1", "GET", "/item")
        self.assertEqual("upstream_timeout", caught.exception.code)
        self.assertEqual(3, bridged.calls)
        self.assertEqual(4, len(self.sleeps.calls))
        for first, second in (self.sleeps.calls[0:2], self.sleeps.calls[2:4]):
            self.assertTrue(0.125 <= first <= 0.25 and 0.25 <= second <= 0.5, self.sleeps.calls)

    def test_a_retry_after_of_30_seconds_is_not_waited_for_the_error_comes_at_once_carrying_it(self):
        self.server.route("GET", r"/v1/connections/c1", lambda s, m: problem(503, "refresh_unavailable", {"Retry-After": "30"}))
        # Through the Bridge, as an HTTP date.
        self.server.route("GET", r"/v1/bridge/c1/item", lambda s, m: problem(
            429, "rate_limited", {"Retry-After": email.utils.formatdate(time.time() + 31, usegmt=True)}))
        with self.assertRaises(Unavailable) as caught:
            self.client.get_connection("c1")
        self.assertEqual(30.0, caught.exception.retry_after)
        self.assertEqual(1, self.server.count("GET", "/v1/connections/c1"))
        with self.assertRaises(RateLimited) as limited:
            self.client.bridge("c1", "GET", "/item")
        self.assertTrue(29 <= limited.exception.retry_after <= 31, limited.exception.retry_after)
        self.assertEqual(1, self.server.count("GET", "/v1/bridge/c1/item"))
        self.assertEqual([], self.sleeps.calls)

    def test_a_connection_that_fails_before_any_answer_is_retried_for_a_get_through_the_bridge_too_but_not_for_a_post(self):
        # Every answer closes its connection, so that each request goes on a new one (the transport sends a request
        # again itself when a kept-alive connection was closed); the first request of each kind is hung up on.
        close = {"Connection": "close"}
        api = Scripted(HANG_UP, js(200, {"connection_id": "c1", "status": "active"}, close))
        bridged = Scripted(HANG_UP, js(200, {"provider": "answer"}, close))
        self.server.route("GET", r"/v1/connections/c1", api)
        self.server.route("GET", r"/v1/bridge/c1/item", bridged)
        self.server.route("POST", r"/v1/refresh/c1", lambda s, m: HANG_UP)
        self.server.route("POST", r"/v1/bridge/c1/item", lambda s, m: HANG_UP)
        self.assertEqual("active", self.client.get_connection("c1").status)
        self.assertEqual(2, api.calls)
        response = self.client.bridge("c1", "GET", "/item")
        self.assertEqual((200, {"provider": "answer"}), (response.status, response.json()))
        self.assertEqual(2, bridged.calls)
        with self.assertRaises(Unavailable) as caught:
            self.client.refresh("c1")
        self.assertIsNone(caught.exception.http_status)
        self.assertEqual(1, self.server.count("POST", "/v1/refresh/c1"))
        with self.assertRaises(Unavailable):
            self.client.bridge("c1", "POST", "/item", body=b"{}")
        self.assertEqual(1, self.server.count("POST", "/v1/bridge/c1/item"))

    def test_a_call_that_times_out_is_not_retried(self):
        release = threading.Event()
        self.addCleanup(release.set)

        def no_answer(seen, m):
            release.wait(10)
            return js(200, {"connection_id": "c1", "status": "active"})

        self.server.route("GET", r"/v1/connections/c1", no_answer)
        with self.assertRaises(Unavailable) as caught:  # http_status None: no answer in time
            self.client.get_connection("c1", timeout=0.2)
        self.assertIsNone(caught.exception.http_status)
        self.assertEqual(1, self.server.count("GET", "/v1/connections/c1"))
        self.assertEqual([], self.sleeps.calls)


if __name__ == "__main__":
    unittest.main()
