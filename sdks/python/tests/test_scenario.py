"""The SDK scenario (sdks/scenario.json, issue 16) against a real Nexus and the scenario upstream, started by
sdks/scenario/run.sh. Runs only when NEXUS_SCENARIO is set. Each step is one test, in order; a step that calls
the echo API directly runs once per adapter (requests, httpx, urllib), one through the Bridge once per way
(client.bridge, requests and httpx with NexusBridgeAuth). After the first failure the remaining steps are skipped.
"""

import http.client
import json
import os
import time
import unittest
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urljoin, urlsplit

from nexus_sdk import (AttentionRequired, Forbidden, NexusClient, NexusError, NotActive, NotFound, RateLimited,
                       Unavailable)
from nexus_sdk import urllib as nexus_urllib

try:
    import requests
    from nexus_sdk import requests as nexus_requests
except ImportError:  # pragma: no cover - the adapters' steps fail with a clear message then
    requests = None  # type: ignore[assignment]
try:
    import httpx
    from nexus_sdk import httpx as nexus_httpx
except ImportError:  # pragma: no cover
    httpx = None  # type: ignore[assignment]

PATH = os.environ.get("NEXUS_SCENARIO")
ERRORS = {"not_found": NotFound, "forbidden": Forbidden, "rate_limited": RateLimited, "unavailable": Unavailable,
          "attention_required": AttentionRequired, "not_active": NotActive}
VARIANTS = {"direct": ["requests", "httpx", "urllib"], "bridge": ["sdk", "requests", "httpx"],
            "unauthenticated": ["plain"]}
# A call that expects an error (expect.error) runs with the variants whose API raises the SDK's typed errors: the
# direct adapters (they fetch the credentials) and the client's bridge(); requests' and httpx's NexusBridgeAuth only
# add the key, and hand Nexus's answer back as it is.
ERROR_VARIANTS = {"direct": ["requests", "httpx", "urllib"], "bridge": ["sdk"]}


def load() -> Dict[str, Any]:
    text = open(PATH, encoding="utf-8").read()  # type: ignore[arg-type]
    text = text.replace("{nexus}", os.environ["NEXUS_URL"]).replace("{upstream}", os.environ["NEXUS_SCENARIO_UPSTREAM"])
    return json.loads(text)


def get_without_redirect(url: str) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def subset(expected: Any, actual: Any, where: str = "") -> List[str]:
    """Differences where `expected` is not a subset of `actual` (objects key by key, recursively)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return ["%s: expected an object, got %r" % (where or "/", actual)]
        out: List[str] = []
        for k, v in expected.items():
            if k not in actual:
                out.append("%s/%s: missing" % (where, k))
            else:
                out.extend(subset(v, actual[k], "%s/%s" % (where, k)))
        return out
    return [] if expected == actual else ["%s: expected %r, got %r" % (where or "/", expected, actual)]


class State:
    data: Dict[str, Any] = {}
    admin: Optional[NexusClient] = None
    client: Optional[NexusClient] = None
    connections: Dict[str, str] = {}   # save_as -> connection id
    provider_of: Dict[str, str] = {}   # save_as -> provider name
    auth_urls: Dict[str, str] = {}
    captured: Dict[str, Dict[str, Any]] = {}
    failed: Optional[str] = None
    refreshed_steps: set = set()


@unittest.skipUnless(PATH, "NEXUS_SCENARIO is not set: run through sdks/scenario/run.sh (see sdks/python/test.sh)")
class ScenarioTests(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls) -> None:
        State.data = load()
        State.admin = NexusClient(os.environ["NEXUS_URL"], os.environ["NEXUS_ADMIN_API_KEY"])
        State.providers = {p["name"]: p for p in State.data["providers"]}  # type: ignore[attr-defined]

    @classmethod
    def tearDownClass(cls) -> None:
        for c in (State.admin, State.client):
            if c is not None:
                c.close()

    # -- helpers -------------------------------------------------------------------------------------------------

    @property
    def client(self) -> NexusClient:
        assert State.client is not None, "no workspace key yet: create_api_key must run first"
        return State.client

    def cid(self, step: Dict[str, Any]) -> str:
        return State.connections[step["connection"]]

    def expect_error(self, step: Dict[str, Any], action: Any) -> None:
        expect = step["expect"]
        kind = ERRORS[expect["error"]]
        with self.assertRaises(kind) as caught:
            action()
        e = caught.exception
        if expect["error"] == "not_active":
            self.assertNotIsInstance(e, AttentionRequired)
        if "status" in expect:
            self.assertEqual(expect["status"], getattr(e, "connection_status", None))
        if expect["error"] == "attention_required":
            self.assertEqual(self.cid(step), e.connection_id)
        if "reason" in expect:
            self.assertEqual(expect["reason"], getattr(e, "reason", None))

    def upstream(self, method: str, path: str) -> Any:
        req = urllib.request.Request(os.environ["NEXUS_SCENARIO_UPSTREAM"] + path, method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(200, r.status)
            body = r.read()
            return json.loads(body) if body else None

    # -- ops -----------------------------------------------------------------------------------------------------

    def op_create_api_key(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        spec = State.data["api_key"]
        key = State.admin.admin.create_api_key(spec["name"], spec["workspaces"],  # type: ignore[union-attr]
                                               can_read_credentials=spec.get("can_read_credentials", True))
        self.assertTrue(key.api_key)
        State.client = NexusClient(os.environ["NEXUS_URL"], key.api_key)

    def op_register_providers(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        for p in State.data["providers"]:
            State.admin.admin.register_provider(p["registration"])  # type: ignore[union-attr]

    def op_request_connection(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        start = self.client.request_connection(State.data["workspace_id"], step["provider"], State.data["return_url"],
                                               scopes=step.get("scopes"), connection_config=step.get("connection_config"))
        prefix = step.get("expect", {}).get("auth_url_prefix")
        if prefix:
            self.assertTrue(start.auth_url.startswith(prefix), "auth_url does not start with %s" % prefix)
        self.assertTrue(start.connection_id)
        State.connections[step["save_as"]] = start.connection_id
        State.provider_of[step["save_as"]] = step["provider"]
        State.auth_urls[step["save_as"]] = start.auth_url

    def op_get_connection(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        if "error" in step.get("expect", {}):
            return self.expect_error(step, lambda: self.client.get_connection(self.cid(step)))
        connection = self.client.get_connection(self.cid(step))
        self.assertEqual(step["expect"]["status"], connection.status)
        self.check_health(step["expect"].get("health", {}), connection)

    def check_health(self, health: Dict[str, Any], connection: Any) -> None:
        """expect.health (sdks/scenario/README.md) against the SDK's Connection."""
        for key, want in health.items():
            if key == "granted_scopes":
                self.assertEqual(want, connection.granted_scopes)
            elif key == "consecutive_failures":
                self.assertEqual(want, connection.consecutive_failures)
            elif key == "last_error":
                self.assertIsNone(want)
                self.assertIsNone(connection.last_error)
            elif key == "last_refreshed":
                self.assertEqual(want, connection.last_refreshed_at is not None)
            elif key == "reconnecting":
                self.assertEqual(want, connection.reconnecting)
            elif key == "connection_config":
                self.assertEqual(want, connection.connection_config)
            else:
                self.fail("unknown health key %r" % key)

    def op_reconnect(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        start = self.client.reconnect(self.cid(step), scopes=step.get("scopes"))
        self.assertEqual(self.cid(step), start.connection_id, "a reconnect keeps the connection id")
        self.assertTrue(start.auth_url.startswith(step["expect"]["auth_url_prefix"]))
        State.auth_urls[step["connection"]] = start.auth_url

    def op_complete_consent(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        auth_url = State.auth_urls[step["connection"]]
        first = get_without_redirect(auth_url)
        self.assertEqual(302, first.status, "the upstream should consent at once")
        callback = urljoin(auth_url, first.getheader("Location"))
        self.assertIn("/auth/callback?", callback)
        second = get_without_redirect(callback)
        self.assertEqual(302, second.status, "Nexus should redirect to the return_url")
        back = urljoin(callback, second.getheader("Location"))
        query = parse_qs(urlsplit(back).query)
        self.assertEqual([self.cid(step)], query.get("connection_id"))
        self.assertEqual([step["expect"]["return_status"]], query.get("status"))

    def op_wait_until_active(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        connection = self.client.wait_until_active(self.cid(step), timeout=step.get("timeout_seconds", 30))
        self.assertEqual("active", connection.status)

    def op_capture_credentials(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        provider = State.providers[step["provider"]]  # type: ignore[attr-defined]
        start = self.client.request_connection(State.data["workspace_id"], step["provider"], State.data["return_url"])
        connection = self.client.submit_credentials(start.connection_id, provider["credentials"])
        self.assertEqual("active", connection.status)
        self.assertEqual("active", self.client.get_connection(start.connection_id).status)
        State.connections[step["save_as"]] = start.connection_id
        State.provider_of[step["save_as"]] = step["provider"]
        State.captured[step["save_as"]] = provider["credentials"]

    def op_list_connections(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        listed: Dict[str, Any] = {}
        for c in self.client.iter_connections(State.data["workspace_id"], status=step.get("status"),
                                              provider=step.get("provider"), page_size=step.get("page_size")):
            self.assertNotIn(c.connection_id, listed, "%s listed twice" % c.connection_id)
            listed[c.connection_id] = c
        for name in step["expect"].get("excludes", []):
            self.assertNotIn(State.connections[name], listed, "%s is listed" % name)
        if "count" in step["expect"]:
            self.assertEqual(step["expect"]["count"], len(listed))
        for name in step["expect"]["includes"]:
            cid = State.connections[name]
            self.assertIn(cid, listed, "%s (%s) is not listed" % (name, cid))
            if "status" in step["expect"]:
                self.assertEqual(step["expect"]["status"], listed[cid].status, name)

    def op_get_credentials(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        expect = step.get("expect", {})
        if "error" in expect:
            return self.expect_error(step, lambda: self.client.credentials(self.cid(step)))
        creds = self.client.credentials(self.cid(step))
        self.assertEqual([], subset(expect.get("strategy", {}), creds.strategy))
        for field in expect.get("credential_fields", []):
            self.assertTrue(creds.secret(field), "credential field %s is empty" % field)
        if expect.get("credentials_equal_captured"):
            captured = State.captured[step["connection"]]
            self.assertEqual(sorted(captured), sorted(f for f in creds.field_names if f != "expires_at"))
            for k, v in captured.items():
                self.assertTrue(creds.secret(k) == v, "credential field %s differs from what was captured" % k)
        if expect.get("expires_in_future"):
            self.assertIsNotNone(creds.expires_at)
            self.assertGreater(creds.expires_at, time.time())

    def op_upstream_control(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        self.upstream("POST", "/control/" + step["action"].replace("_", "-"))

    def op_force_refresh(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        cid = self.cid(step)
        self.client.credentials(cid) if "error" not in step.get("expect", {}) else None
        if "error" in step.get("expect", {}):
            self.expect_error(step, lambda: self.client.refresh(cid))
        else:
            self.client.refresh(cid)
        self.assertNotIn(cid, self.client._cache, "the SDK should drop its cached credential on a forced refresh")

    def op_delete_connection(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        names = step.get("connections") or [step["connection"]]
        for name in names:
            cid = State.connections[name]
            self.client.delete_connection(cid)
            self.assertNotIn(cid, self.client._cache)

    def op_call(self, step: Dict[str, Any], variant: Optional[str]) -> None:
        expect = step.get("expect", {})
        if "error" in expect:
            self.expect_error(step, lambda: self.send(step, variant))
            return
        stats_before = None
        if expect.get("refreshed_once"):
            if step["id"] in State.refreshed_steps:
                # Each adapter must meet the 401 itself: expire the tokens again for the ones after the first.
                self.upstream("POST", "/control/expire-access-tokens")
            State.refreshed_steps.add(step["id"])
            stats_before = self.upstream("GET", "/control/stats")["refreshes"]
        status, body = self.send(step, variant)
        self.assertEqual(expect.get("status", 200), status, "body: %r" % (body,))
        if "json" in expect:
            self.assertEqual([], subset(expect["json"], body))
        if stats_before is not None:
            self.assertEqual(stats_before + 1, self.upstream("GET", "/control/stats")["refreshes"],
                             "the SDK should have forced exactly one refresh")

    def send(self, step: Dict[str, Any], variant: Optional[str]) -> Any:
        cid = self.cid(step)
        method, path = step["method"], step["path"]
        headers = dict(step.get("headers") or {})
        body = step["body"].encode("utf-8") if "body" in step else None
        provider = State.providers[State.provider_of[step["connection"]]]  # type: ignore[attr-defined]
        url = provider["registration"]["api_base_url"] + path
        via = step["via"]
        if via == "bridge":
            if variant == "sdk":
                r = self.client.bridge(cid, method, path, headers=headers, body=body)
                return r.status, self.parse(r.body)
            url = self.client.bridge_url(cid, path)
        if variant in ("requests", "httpx"):
            lib = requests if variant == "requests" else httpx
            self.assertIsNotNone(lib, "%s is not installed" % variant)
            if via == "bridge":
                auth = (nexus_requests if variant == "requests" else nexus_httpx).NexusBridgeAuth(self.client)
            else:
                auth = (nexus_requests if variant == "requests" else nexus_httpx).NexusAuth(self.client, cid)
            if variant == "requests":
                r = requests.request(method, url, headers=headers, data=body, auth=auth, timeout=30)
                return r.status_code, self.parse(r.content)
            with httpx.Client(auth=auth, timeout=30) as h:
                r = h.request(method, url, headers=headers, content=body)
                return r.status_code, self.parse(r.content)
        handlers = [nexus_urllib.NexusHandler(self.client, cid)] if variant == "urllib" else []
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(urllib.request.Request(url, data=body, headers=headers, method=method), timeout=30) as r:
                return r.status, self.parse(r.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, self.parse(e.read())

    @staticmethod
    def parse(body: bytes) -> Any:
        try:
            return json.loads(body) if body else None
        except ValueError:
            return body.decode("utf-8", "replace")


def _make_test(index: int, step: Dict[str, Any], variant: Optional[str]) -> Any:
    def test(self: ScenarioTests) -> None:
        if State.failed:
            self.skipTest("skipped after the failure of step %s" % State.failed)
        op = getattr(self, "op_" + step["op"], None)
        try:
            self.assertIsNotNone(op, "unknown op %r" % step["op"])
            op(step, variant)
        except (AssertionError, NexusError, OSError, KeyError) as e:
            State.failed = step["id"] + (" (%s)" % variant if variant else "")
            raise e
    test.__doc__ = "scenario step %s%s: %s" % (step["id"], " via " + variant if variant else "", step["op"])
    return test


if PATH:
    for _i, _step in enumerate(load()["steps"]):
        _variants = [None]
        if _step["op"] == "call":
            _variants = (ERROR_VARIANTS if "error" in _step.get("expect", {}) else VARIANTS)[_step["via"]]
        for _v in _variants:
            _name = "test_%03d_%s%s" % (_i, _step["id"].replace("-", "_"), "__" + _v if _v else "")
            setattr(ScenarioTests, _name, _make_test(_i, _step, _v))


if __name__ == "__main__":
    unittest.main()
