"""A machine-to-machine MCP server's connection (client_credentials, docs/remote-mcp.md) needs nobody's consent: Nexus
answers request-connection 201 and reconnect 200 with {connection_id, status: "active"} and no auth_url (its JSON
leaves a null out). The SDK's ConnectionRequest has auth_url None and status "active"."""

import asyncio
import json
import unittest

from nexus_sdk import ConnectionRequest, NexusClient, Unavailable
from nexus_sdk.aio import AsyncNexusClient
from support import FakeServer, js, problem


class MachineConnectionTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.client = NexusClient(self.server.url, "nxk_test")

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_request_connection_gives_the_id_active_and_no_auth_url(self):
        # What Nexus sends (MachineConnectionResponse, nulls not written).
        self.server.route("POST", r"/v1/request-connection",
                          lambda s, m: js(201, {"connection_id": "conn_m2m", "status": "active"}))
        start = self.client.request_connection("w", "reports", "https://app.example/return")
        self.assertEqual("conn_m2m", start.connection_id)
        self.assertIsNone(start.auth_url)
        self.assertEqual("active", start.status)
        self.assertEqual("ConnectionRequest(connection_id='conn_m2m', auth_url=None, status='active')", repr(start))

    def test_reconnect_keeps_the_id_and_gives_active_without_auth_url(self):
        # The same answer with the null written is read the same way.
        self.server.route("POST", r"/v1/connections/conn_m2m/reconnect",
                          lambda s, m: js(200, {"auth_url": None, "connection_id": "conn_m2m", "status": "active"}))
        again = self.client.reconnect("conn_m2m", scopes=["reports:read"])
        self.assertEqual(("conn_m2m", None, "active"), (again.connection_id, again.auth_url, again.status))
        self.assertEqual({"scopes": ["reports:read"]}, json.loads(self.server.seen[0].body))

    def test_the_async_client_gives_the_same(self):
        self.server.route("POST", r"/v1/request-connection",
                          lambda s, m: js(201, {"connection_id": "conn_m2m", "status": "active"}))

        async def run():
            async with AsyncNexusClient(client=self.client) as nexus:
                return await nexus.request_connection("w", "reports", "https://app.example/return")

        self.assertEqual(ConnectionRequest(None, "conn_m2m", "active"), asyncio.run(run()))

    def test_a_consent_answer_keeps_its_auth_url_no_status_and_its_repr(self):
        self.server.route("POST", r"/v1/request-connection",
                          lambda s, m: js(201, {"auth_url": "https://idp.example/authorize?state=s3cr3t", "connection_id": "c1"}))
        start = self.client.request_connection("w", "github", "https://app.example/return")
        self.assertEqual(("https://idp.example/authorize?state=s3cr3t", "c1", None), (start.auth_url, start.connection_id, start.status))
        self.assertEqual("ConnectionRequest(connection_id='c1', auth_url=<https://idp.example/authorize?…>)", repr(start))

    def test_a_refused_machine_connection_raises_unavailable_with_the_connection_id_once(self):
        self.server.route("POST", r"/v1/request-connection",
                          lambda s, m: problem(502, "token_request_failed", connection_id="conn_m2m"))
        with self.assertRaises(Unavailable) as caught:
            self.client.request_connection("w", "reports", "https://app.example/return")
        self.assertEqual(("token_request_failed", "conn_m2m"), (caught.exception.code, caught.exception.connection_id))
        self.assertEqual(1, self.server.count("POST", "/v1/request-connection"))


if __name__ == "__main__":
    unittest.main()
