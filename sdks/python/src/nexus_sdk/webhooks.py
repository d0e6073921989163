"""Nexus webhooks: verify a delivery's Standard Webhooks signature and read its event.

>>> event = verify_webhook(secret, request.headers, request.body)   # raises WebhookVerificationError
>>> if event.type == CONNECTION_RECOVERED:
...     print(event.data["connection_id"], "works again after", event.data["failures"], "failures")
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional

__all__ = [
    "CONNECTION_ACTIVE", "CONNECTION_ATTENTION_REQUIRED", "CONNECTION_REFRESH_FAILED", "CONNECTION_RECOVERED",
    "CONNECTION_REVOKED", "WEBHOOK_TEST", "EVENT_TYPES", "WebhookEvent", "WebhookVerificationError", "verify_webhook",
    "parse_webhook_event",
]

#: The user completed consent (``reason``: ``connected``, ``reconnected``) or a manual refresh brought it back (``refreshed``).
CONNECTION_ACTIVE = "connection.active"
#: The provider rejected a refresh, or the token expired without a refresh token: ask the user to connect again.
CONNECTION_ATTENTION_REQUIRED = "connection.attention_required"
#: The first transient refresh failure of a streak; Nexus keeps retrying.
CONNECTION_REFRESH_FAILED = "connection.refresh_failed"
#: A refresh succeeded after transient failures, once per streak (``failures``: how many there were).
CONNECTION_RECOVERED = "connection.recovered"
#: The connection was deleted.
CONNECTION_REVOKED = "connection.revoked"
#: ``POST /v1/admin/webhooks/{id}/test``.
WEBHOOK_TEST = "webhook.test"
EVENT_TYPES = frozenset({CONNECTION_ACTIVE, CONNECTION_ATTENTION_REQUIRED, CONNECTION_REFRESH_FAILED,
                         CONNECTION_RECOVERED, CONNECTION_REVOKED, WEBHOOK_TEST})

TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The delivery is not signed with the secret, or its timestamp is too far from now (a possible replay)."""


class WebhookEvent(NamedTuple):
    """A delivery's body. ``id`` is the same on every retry: de-duplicate on it. ``data`` holds the event's fields
    (``connection_id``, ``provider``, ``status``, and per type ``reason``, ``error``, ``error_description``,
    ``failures``, ``retry_at``, ``expires_at``, ``previous_status``, ``provider_revocation``); no secret."""

    id: str
    type: str
    timestamp: int
    workspace_id: Optional[str]
    data: Dict[str, Any]


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: int = TOLERANCE_SECONDS,
                   clock: Callable[[], float] = time.time) -> WebhookEvent:
    """Checks ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">``, keyed
    with the base64 part of ``secret`` after ``whsec_``) in constant time, refuses a ``webhook-timestamp`` more than
    ``tolerance`` seconds from now, and returns the event. ``body`` is the raw request body. A secret whose key is
    empty (``"whsec_"``, ``""``) is refused."""
    msg_id, timestamp, signatures = (_header(headers, "webhook-id"), _header(headers, "webhook-timestamp"),
                                     _header(headers, "webhook-signature"))
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("webhook-id, webhook-timestamp or webhook-signature missing")
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    if abs(clock() - sent) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far from now")
    try:
        key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None
    if not key:
        # Anyone can compute an HMAC with an empty key: "whsec_" (or "") is no secret, as in the other SDKs.
        raise WebhookVerificationError("the secret is not a whsec_ secret")
    mac = hmac.new(key, ("%s.%s." % (msg_id, timestamp)).encode("utf-8") + bytes(body), hashlib.sha256).digest()
    expected = b"v1," + base64.b64encode(mac)
    # Bytes, not str: hmac.compare_digest raises TypeError for a str with non-ASCII characters, and a header is
    # whatever the sender put there; a signature that is not ASCII simply does not match.
    if not any(hmac.compare_digest(expected, s.encode("utf-8", "replace")) for s in signatures.split()):
        raise WebhookVerificationError("signature not valid")
    return parse_webhook_event(body)


def parse_webhook_event(body: bytes) -> WebhookEvent:
    """Reads a delivery's body without checking its signature: use :func:`verify_webhook` on requests."""
    data = json.loads(bytes(body).decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("a webhook event is a JSON object")
    payload = data.get("data")
    return WebhookEvent(str(data.get("id") or ""), str(data.get("type") or ""), int(data.get("timestamp") or 0),
                        data.get("workspace_id"), dict(payload) if isinstance(payload, dict) else {})
