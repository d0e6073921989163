"""The asyncio front: coroutines share the synchronous client's cache and its single-flight fetches."""

import asyncio
import threading
import unittest

from nexus_sdk import AttentionRequired, NexusError, NexusTimeout
from nexus_sdk.aio import AsyncNexusClient
from support import FakeServer, js

COROUTINES = 1000


class AsyncTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.gate = threading.Event()
        self.server.route("GET", r"/v1/token/(\w+)", self.token)
        self.client = AsyncNexusClient(self.server.url, "nxk_test")

    def token(self, seen, m):
        self.gate.wait(10)
        return js(200, {"strategy": {"type": "oauth2"}, "credentials": {"access_token": "at"}, "expires_at": None})

    def tearDown(self):
        self.client.sync.close()
        self.server.close()

    def test_a_thousand_coroutines_on_a_cold_entry_make_exactly_one_token_request(self):
        async def run():
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, self.gate.set)
            return await asyncio.gather(*(self.client.credentials("c1") for _ in range(COROUTINES)))

        results = asyncio.run(run())
        self.assertEqual(1, self.server.count("GET", "/v1/token/"))
        self.assertEqual(1, len({id(r) for r in results}))

    def test_wait_until_active_polls_without_blocking_and_raises_the_typed_errors(self):
        states = iter(["pending", "pending", "active"])
        self.server.route("GET", r"/v1/connections/c1", lambda s, m: js(200, {"connection_id": "c1", "status": next(states, "active")}))
        self.server.route("GET", r"/v1/connections/c2", lambda s, m: js(200, {"connection_id": "c2", "status": "attention_required", "error": "invalid_grant"}))
        self.server.route("GET", r"/v1/connections/c3", lambda s, m: js(200, {"connection_id": "c3", "status": "pending"}))

        async def run():
            active = await self.client.wait_until_active("c1", timeout=10, poll_interval=0.01)
            self.assertEqual("active", active.status)
            with self.assertRaises(AttentionRequired):
                await self.client.wait_until_active("c2", timeout=10)
            with self.assertRaises(NexusTimeout):
                await self.client.wait_until_active("c3", timeout=0.1, poll_interval=0.02)

        asyncio.run(run())

    def test_a_redirect_from_nexus_s_api_is_a_nexus_error_and_the_api_key_never_reaches_the_host_it_names(self):
        elsewhere = FakeServer()
        self.addCleanup(elsewhere.close)
        elsewhere.route("GET", r"/.*", lambda s, m: js(200, {"connection_id": "c1", "status": "active"}))
        self.server.route("GET", r"/v1/connections/c1", lambda s, m: (301, {"Location": elsewhere.url + s.path}, b""))

        async def run():
            with self.assertRaises(NexusError) as caught:
                await self.client.get_connection("c1")
            self.assertEqual(301, caught.exception.http_status)

        asyncio.run(run())
        self.assertEqual([], elsewhere.seen)


if __name__ == "__main__":
    unittest.main()
