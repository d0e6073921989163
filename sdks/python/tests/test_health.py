"""Issue 17 in the SDK: health fields, the paging helpers, reconnect, connection_config on credentials, and the
webhook verification against the test vector shared by every Nexus SDK."""

import asyncio
import base64
import hashlib
import hmac
import json
import unittest

from nexus_sdk import LastError, NexusClient, WebhookVerificationError, verify_webhook
from nexus_sdk.aio import AsyncNexusClient
from nexus_sdk.webhooks import CONNECTION_RECOVERED
from support import FakeServer, js

# The shared vector: a connection.recovered delivery signed as Standard Webhooks specifies.
SECRET = "whsec_bmV4dXMtc2RrLXdlYmhvb2stdGVzdC1rZXktMzJieXQ="
HEADERS = {"webhook-id": "msg_01JEXAMPLERECOVERED00000", "webhook-timestamp": "1764936000",
           "webhook-signature": "v1,kBeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY="}
BODY = (b'{"id":"msg_01JEXAMPLERECOVERED00000","type":"connection.recovered","timestamp":1764936000,'
        b'"workspace_id":"user_abc123","data":{"connection_id":"conn_01JEXAMPLE","provider":"google","status":"active",'
        b'"failures":3,"expires_at":1764939600}}')


def connection(cid):
    return {"connection_id": cid, "status": "active", "provider": "shop", "workspace_id": "w", "scopes": ["read"],
            "created_at": 1, "updated_at": 2, "connection_config": {"shop": "acme"}, "granted_scopes": ["read"],
            "last_refreshed_at": 100, "next_refresh_at": 200, "consecutive_failures": 2,
            "last_error": {"code": "temporarily_unavailable", "message": "Down for maintenance"}, "reconnecting": True}


class HealthTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.client = NexusClient(self.server.url, "nxk_test")

    def tearDown(self):
        self.client.close()
        self.server.close()

    def pages(self, seen, m):
        if "cursor=c2" in seen.path:
            return js(200, {"connections": [connection("conn_1")]})
        return js(200, {"connections": [connection("conn_3"), connection("conn_2")], "next_cursor": "c2"})

    def test_iter_connections_follows_next_cursor_with_the_same_filters_and_reads_the_health_fields(self):
        self.server.route("GET", r"/v1/connections\?.*", self.pages)
        listed = list(self.client.iter_connections("w", status="active", provider="shop", page_size=2))
        self.assertEqual(["conn_3", "conn_2", "conn_1"], [c.connection_id for c in listed])
        self.assertEqual(["/v1/connections?workspace_id=w&status=active&provider=shop&limit=2",
                          "/v1/connections?workspace_id=w&status=active&provider=shop&limit=2&cursor=c2"],
                         [s.path for s in self.server.seen])
        c = listed[0]
        self.assertEqual(({"shop": "acme"}, ["read"], 100, 200, 2, True),
                         (c.connection_config, c.granted_scopes, c.last_refreshed_at, c.next_refresh_at,
                          c.consecutive_failures, c.reconnecting))
        self.assertEqual(LastError("temporarily_unavailable", "Down for maintenance"), c.last_error)

    def test_the_async_iterator_walks_the_same_pages(self):
        self.server.route("GET", r"/v1/connections\?.*", self.pages)

        async def run():
            async with AsyncNexusClient(client=self.client) as nexus:
                return [c.connection_id async for c in nexus.iter_connections("w", page_size=2)]

        self.assertEqual(["conn_3", "conn_2", "conn_1"], asyncio.run(run()))

    def test_reconnect_posts_the_scopes_and_keeps_the_id(self):
        self.server.route("POST", r"/v1/connections/conn_1/reconnect",
                          lambda s, m: js(200, {"auth_url": "https://p.example/authorize?state=s", "connection_id": "conn_1"}))
        start = self.client.reconnect("conn_1", scopes=["read"])
        self.assertEqual("conn_1", start.connection_id)
        self.assertEqual({"scopes": ["read"]}, json.loads(self.server.seen[0].body))

    def test_credentials_carry_the_connection_config(self):
        self.server.route("GET", r"/v1/token/c1", lambda s, m: js(200, {
            "strategy": {"type": "oauth2"}, "credentials": {"access_token": "at"}, "expires_at": None,
            "connection_config": {"shop": "acme"}}))
        self.assertEqual({"shop": "acme"}, self.client.credentials("c1").connection_config)


class WebhookTests(unittest.TestCase):
    def test_a_recovered_delivery_is_verified_and_parsed(self):
        headers = dict(HEADERS, **{"webhook-signature": "v1,c29tZXRoaW5nIGVsc2U= " + HEADERS["webhook-signature"]})
        event = verify_webhook(SECRET, headers, BODY, clock=lambda: 1764936030)
        self.assertEqual((CONNECTION_RECOVERED, "msg_01JEXAMPLERECOVERED00000", "user_abc123", 1764936000),
                         (event.type, event.id, event.workspace_id, event.timestamp))
        self.assertEqual(("conn_01JEXAMPLE", 3, 1764939600),
                         (event.data["connection_id"], event.data["failures"], event.data["expires_at"]))

    def test_a_wrong_signature_a_tampered_body_an_old_timestamp_or_another_secret_is_refused(self):
        cases = {
            "wrong signature": (SECRET, dict(HEADERS, **{"webhook-signature": "v1,kCeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY="}), BODY, 1764936000),
            "tampered body": (SECRET, HEADERS, BODY.replace(b'"failures":3', b'"failures":4'), 1764936000),
            "replayed later": (SECRET, HEADERS, BODY, 1764936000 + 360),
            "other secret": ("whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC0xMjM0NTY=", HEADERS, BODY, 1764936000),
            "no headers": (SECRET, {}, BODY, 1764936000),
        }
        for name, (secret, headers, body, now) in cases.items():
            with self.subTest(name):
                with self.assertRaises(WebhookVerificationError):
                    verify_webhook(secret, headers, body, clock=lambda now=now: now)

    def test_a_secret_whose_key_is_empty_is_refused_even_with_the_signature_that_key_makes(self):
        # Anyone can compute an HMAC with an empty key, so such a "secret" verifies nothing (as in Go, TypeScript, .NET).
        mac = hmac.new(b"", b"%s.%s.%s" % (HEADERS["webhook-id"].encode(), HEADERS["webhook-timestamp"].encode(), BODY),
                       hashlib.sha256).digest()
        headers = dict(HEADERS, **{"webhook-signature": "v1," + base64.b64encode(mac).decode()})
        for secret in ("whsec_", ""):
            with self.subTest(secret=secret):
                with self.assertRaises(WebhookVerificationError):
                    verify_webhook(secret, headers, BODY, clock=lambda: 1764936000)

    def test_a_signature_header_that_is_not_ascii_is_refused_with_the_sdk_error(self):
        headers = dict(HEADERS, **{"webhook-signature": "v1,\u00e9t\u00e9 v1,\u2603"})
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(SECRET, headers, BODY, clock=lambda: 1764936000)


if __name__ == "__main__":
    unittest.main()
