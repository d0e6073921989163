"""The credential cache: expiry, and one shared GET /v1/token for any number of concurrent callers."""

import threading
import time
import unittest

from nexus_sdk import AttentionRequired, Credentials, NexusClient, NexusError, Unavailable
from support import Clock, FakeServer, Sleeps, js, problem

THREADS = 1000


class CacheTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.clock = Clock(1_700_000_000.0)
        self.expires_at = self.clock.now + 3600
        self.version = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fetching = threading.Event()  # set when a GET /v1/token reached the server

        def token(seen, m):
            self.fetching.set()
            self.gate.wait(10)
            self.version += 1
            return js(200, {"strategy": {"type": "oauth2"},
                            "credentials": {"access_token": "tok-%d" % self.version, "expires_at": self.expires_at},
                            "expires_at": self.expires_at})

        self.server.route("GET", r"/v1/token/(\w+)", token)
        self.client = NexusClient(self.server.url, "nxk_test", clock=self.clock, sleep=Sleeps())

    def tearDown(self):
        self.client.close()
        self.server.close()

    def stampede(self):
        """THREADS threads released at once, each asking for the credentials; returns what they got."""
        barrier = threading.Barrier(THREADS + 1)
        results, errors = [None] * THREADS, []

        def worker(i):
            barrier.wait()
            try:
                results[i] = self.client.credentials("conn_a")
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        self.gate.clear()
        barrier.wait()
        # Hold the one fetch until every thread has had time to reach the cache and join it.
        threading.Timer(0.3, self.gate.set).start()
        for t in threads:
            t.join(30)
        self.assertEqual([], errors)
        return results

    def test_a_thousand_threads_on_a_cold_entry_make_exactly_one_token_request(self):
        results = self.stampede()
        self.assertEqual(1, self.server.count("GET", "/v1/token/"))
        self.assertEqual({"tok-1"}, {r.secret("access_token") for r in results})

    def test_a_thousand_threads_on_an_expired_entry_make_exactly_one_more_token_request(self):
        self.client.credentials("conn_a")
        self.clock.now = self.expires_at + 1  # expired
        self.expires_at = self.clock.now + 3600
        results = self.stampede()
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))
        self.assertEqual({"tok-2"}, {r.secret("access_token") for r in results})

    def test_credentials_are_served_from_the_cache_until_the_margin_before_they_expire(self):
        first = self.client.credentials("conn_a")
        self.clock.now = self.expires_at - 61
        self.assertIs(first, self.client.credentials("conn_a"))
        self.assertEqual(1, self.server.count("GET", "/v1/token/"))
        self.clock.now = self.expires_at - 59  # inside the 60 s margin
        self.assertEqual("tok-2", self.client.credentials("conn_a").secret("access_token"))
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))

    def test_a_short_lived_token_is_kept_for_at_most_half_its_remaining_life(self):
        self.expires_at = self.clock.now + 10
        self.client.credentials("conn_a")
        self.clock.now += 4.9
        self.client.credentials("conn_a")
        self.assertEqual(1, self.server.count("GET", "/v1/token/"))
        self.clock.now += 0.2
        self.client.credentials("conn_a")
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))

    def test_credentials_without_an_expiry_are_kept_for_the_cache_ttl(self):
        self.expires_at = None
        self.client.credentials("conn_a")
        self.clock.now += 299
        self.client.credentials("conn_a")
        self.assertEqual(1, self.server.count("GET", "/v1/token/"))
        self.clock.now += 2
        self.client.credentials("conn_a")
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))

    def test_connections_are_cached_separately(self):
        self.client.credentials("conn_a")
        self.client.credentials("conn_b")
        self.client.credentials("conn_a")
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))

    def test_a_failed_shared_fetch_reaches_every_waiter_and_is_not_cached(self):
        calls = []

        def failing(seen, m):
            calls.append(1)
            self.gate.wait(10)
            return problem(409, "connection_not_active", status="attention_required", error="invalid_grant",
                           connection_id="conn_a")

        self.server.route("GET", r"/v1/token/(\w+)", failing)
        self.gate.clear()
        errors = []

        def worker():
            try:
                self.client.credentials("conn_a")
            except Exception as e:
                errors.append(type(e).__name__)

        threads = [threading.Thread(target=worker) for _ in range(50)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        self.gate.set()
        for t in threads:
            t.join(10)
        self.assertEqual(["AttentionRequired"] * 50, errors)
        self.assertEqual(1, len(calls))
        with self.assertRaises(Exception):
            self.client.credentials("conn_a")
        self.assertEqual(2, len(calls))

    def test_invalidate_forgets_the_cached_credentials(self):
        self.client.credentials("conn_a")
        self.client.invalidate("conn_a")
        self.client.credentials("conn_a")
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))

    def test_submitting_credentials_drops_the_cached_ones(self):
        self.server.route("POST", r"/v1/connections/(\w+)/credentials",
                          lambda seen, m: js(200, {"connection_id": "conn_a", "status": "active"}))
        self.assertEqual("tok-1", self.client.credentials("conn_a").secret("access_token"))
        self.client.submit_credentials("conn_a", {"api_key": "new"})
        self.assertEqual("tok-2", self.client.credentials("conn_a").secret("access_token"))
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))

    def test_a_token_fetched_while_a_refresh_or_delete_dropped_the_cache_is_handed_over_but_not_cached(self):
        self.server.route("POST", r"/v1/refresh/(\w+)", lambda seen, m: js(200, {"connection_id": "conn_a", "status": "active"}))
        self.server.route("DELETE", r"/v1/connections/(\w+)", lambda seen, m: (204, {}, b""))
        for name, drop in (("refresh", self.client.refresh), ("delete_connection", self.client.delete_connection),
                           ("invalidate", self.client.invalidate)):
            with self.subTest(name):
                self.client.invalidate()
                self.gate.clear()
                self.fetching.clear()
                got = []
                fetch = threading.Thread(target=lambda: got.append(self.client.credentials("conn_a")))
                fetch.start()
                self.assertTrue(self.fetching.wait(10))
                drop("conn_a")  # while that GET /v1/token is still waiting for its answer
                self.gate.set()
                fetch.join(10)
                stale = got[0].secret("access_token")
                before = self.server.count("GET", "/v1/token/")
                self.assertNotEqual(stale, self.client.credentials("conn_a").secret("access_token"))
                self.assertEqual(before + 1, self.server.count("GET", "/v1/token/"))

    def test_a_rejection_of_another_copy_of_the_cached_credentials_still_refreshes(self):
        self.server.route("POST", r"/v1/refresh/(\w+)", lambda seen, m: js(200, {"connection_id": "conn_a", "status": "active"}))
        cached = self.client.credentials("conn_a")
        # The same secret in another object, as a second client, a copy or an older fetch would hold it.
        copy = Credentials.from_token_response("conn_a", {"strategy": dict(cached.strategy), "expires_at": cached.expires_at,
                                                          "credentials": {"access_token": cached.secret("access_token"),
                                                                          "expires_at": self.expires_at}})
        fresh = self.client.credentials_after_rejection("conn_a", copy)
        self.assertEqual("tok-2", fresh.secret("access_token"))
        self.assertEqual(1, self.server.count("POST", "/v1/refresh/"))

    def test_threads_refused_the_same_credentials_share_one_refresh(self):
        refreshes = []

        def refresh(seen, m):
            refreshes.append(1)
            self.gate.wait(10)
            return js(200, {"connection_id": "conn_a", "status": "active"})

        self.server.route("POST", r"/v1/refresh/(\w+)", refresh)
        stale = self.client.credentials("conn_a")
        self.gate.clear()
        got = []

        def worker():
            got.append(self.client.credentials_after_rejection("conn_a", stale).secret("access_token"))

        threads = [threading.Thread(target=worker) for _ in range(100)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        self.gate.set()
        for t in threads:
            t.join(10)
        # Threads that arrive after the refresh finished find the new credentials in the cache.
        late = self.client.credentials_after_rejection("conn_a", stale)
        self.assertEqual(1, len(refreshes))
        self.assertEqual({"tok-2"}, set(got) | {late.secret("access_token")})
        self.assertEqual(2, self.server.count("GET", "/v1/token/"))


    def test_credentials_served_over_an_outage_are_asked_for_again_after_5_s_and_a_500_or_attention_required_is_never_masked(self):
        answers = [problem(503, "refresh_unavailable"), problem(503, "refresh_unavailable"), problem(500, "internal_error"),
                   problem(409, "connection_not_active", status="attention_required", connection_id="c1", error="invalid_grant")]
        client = NexusClient(self.server.url, "nxk_test", clock=self.clock, sleep=Sleeps(), max_retries=0)
        self.addCleanup(client.close)
        self.assertEqual("tok-1", client.credentials("c1").secret("access_token"))
        self.server.route("GET", r"/v1/token/c1", lambda seen, m: answers.pop(0))
        self.clock.now = self.expires_at - 30
        for _ in range(3):  # one fetch, then the cached credentials for 5 s
            self.assertEqual("tok-1", client.credentials("c1").secret("access_token"))
        self.assertEqual(2, self.server.count("GET", "/v1/token/c1"))
        self.clock.now = self.expires_at - 25
        self.assertEqual("tok-1", client.credentials("c1").secret("access_token"))
        self.assertEqual(3, self.server.count("GET", "/v1/token/c1"))
        self.clock.now = self.expires_at - 20
        with self.assertRaises(NexusError) as caught:
            client.credentials("c1")
        self.assertIs(NexusError, type(caught.exception))
        with self.assertRaises(AttentionRequired):
            client.credentials("c1")


class SameSecretTests(unittest.TestCase):
    """same_secret compares the strategy type and the string fields only, as the Go, TypeScript and .NET SDKs."""

    @staticmethod
    def oauth2(token, expires_at):
        return Credentials.from_token_response("conn_a", {"strategy": {"type": "oauth2"}, "expires_at": expires_at,
                                                          "credentials": {"access_token": token, "expires_at": expires_at}})

    def test_the_same_token_with_another_numeric_expires_at_is_the_same_secret(self):
        self.assertTrue(self.oauth2("tok-1", 1764939600).same_secret(self.oauth2("tok-1", 1764943200)))
        self.assertTrue(self.oauth2("tok-1", 1764939600).same_secret(self.oauth2("tok-1", None)))

    def test_another_string_field_or_strategy_type_is_another_secret(self):
        self.assertFalse(self.oauth2("tok-1", 1764939600).same_secret(self.oauth2("tok-2", 1764939600)))
        api_key = Credentials.from_token_response("conn_a", {"strategy": {"type": "api_key"},
                                                             "credentials": {"api_key": "tok-1"}})
        bearer = Credentials.from_token_response("conn_a", {"strategy": {"type": "oauth2"},
                                                            "credentials": {"access_token": "tok-1"}})
        self.assertFalse(api_key.same_secret(bearer))
        with_session = Credentials.from_token_response("conn_a", {
            "strategy": {"type": "aws_sigv4", "region": "us-east-1", "service": "s3"},
            "credentials": {"access_key_id": "AKID", "secret_access_key": "s", "session_token": "t1"}})
        other_session = Credentials.from_token_response("conn_a", {
            "strategy": {"type": "aws_sigv4", "region": "us-east-1", "service": "s3"},
            "credentials": {"access_key_id": "AKID", "secret_access_key": "s", "session_token": "t2"}})
        self.assertFalse(with_session.same_secret(other_session))


if __name__ == "__main__":
    unittest.main()
