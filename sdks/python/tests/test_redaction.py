"""No secret in any message, repr/str or log line: API keys, tokens, passwords, AWS secrets and session tokens,
query-string keys, the state in an auth_url, a newly created API key."""

import logging
import socket
import unittest

import httpx
import requests

from nexus_sdk import HttpRequest, NexusClient, NexusError
from nexus_sdk import httpx as nexus_httpx
from nexus_sdk import requests as nexus_requests
from nexus_sdk import urllib as nexus_urllib
from support import CapturedLogs, FakeServer, js, problem
from test_apply import ADAPTERS, STRATEGIES, Provider, call

API_KEY = "nxk_the-api-key-secret"
SECRETS = [API_KEY, "at-1", "at-2", "k-1", "k-2", "q-1", "q-2", "pw-1", "pw-2", "wJalrXUtnFEMI", "sess-token-1",
           "dXNlcjpwdy0", "state-secret", "nxk_created-secret"]


class RedactionTests(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.provider = Provider(self.server)
        self.client = NexusClient(self.server.url, API_KEY, sleep=lambda s: None, max_retries=1)
        self.texts = []

    def tearDown(self):
        self.client.close()
        self.server.close()

    def keep(self, *objects):
        for o in objects:
            self.texts.append(repr(o))
            self.texts.append(str(o))
            if isinstance(o, BaseException):
                self.texts.extend(str(a) for a in o.args)

    def assertNoSecret(self, text):
        for secret in SECRETS:
            self.assertNotIn(secret, text)

    def test_no_secret_reaches_a_log_line_a_message_or_a_repr(self):
        s = self.server
        s.route("POST", r"/v1/request-connection",
                lambda q, m: js(201, {"auth_url": "http://p/authorize?state=state-secret", "connection_id": "c1"}))
        s.route("POST", r"/v1/admin/api-keys",
                lambda q, m: js(201, {"id": "ak_1", "name": "n", "workspaces": ["ws"], "api_key": "nxk_created-secret"}))
        s.route("GET", r"/v1/connections/gone", lambda q, m: problem(404, "not_found"))
        s.route("GET", r"/v1/token/c_attn", lambda q, m: problem(409, "connection_not_active", status="attention_required",
                                                                   error="invalid_grant", connection_id="c_attn"))
        s.route("GET", r"/v1/token/c_busy", lambda q, m: problem(503, "refresh_unavailable", {"Retry-After": "1"}))
        with CapturedLogs() as logs:
            self.keep(self.client, self.client.request_connection("ws", "p", "http://localhost/r"),
                      self.client.admin.create_api_key("n", ["ws"]))
            for cid in STRATEGIES:
                creds = self.client.credentials(cid)
                self.keep(creds, creds.strategy)
                self.keep(nexus_requests.NexusAuth(self.client, cid), nexus_httpx.NexusAuth(self.client, cid),
                          nexus_urllib.NexusHandler(self.client, cid))
                for adapter in ADAPTERS:
                    self.provider.move_on(cid)  # force the 401 path
                    self.assertEqual(200, call(adapter, self.client, cid, s.url + "/api/%s/x?y=1" % cid)[0])
            self.keep(creds._aws, HttpRequest("GET", "http://h/x?api_key=pre_q-1", {"Authorization": "Bearer at-1"}))
            for action in (lambda: self.client.get_connection("gone"), lambda: self.client.credentials("c_attn"),
                           lambda: self.client.credentials("c_busy"), self.unreachable_provider):
                with self.assertRaises(NexusError) as caught:
                    action()
                self.keep(caught.exception)
        self.assertTrue(logs.lines, "the flows above should have logged")
        self.assertIn("GET /v1/token/c_oauth", logs.text)
        # Only the SDK's own lines: urllib3's and httpx's DEBUG lines print whole URLs, a query API key included.
        self.assertNoSecret("\n".join(l for l in logs.lines if " nexus_sdk " in l))
        for text in self.texts:
            self.assertNoSecret(text)

    def unreachable_provider(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        self.client.send("c_query", "GET", "http://127.0.0.1:%d/x?other=1" % port)



if __name__ == "__main__":
    unittest.main()
