"""Typed errors. Messages hold ids, status codes and Nexus's problem codes, never a secret."""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any, Dict, Optional

__all__ = [
    "NexusError",
    "ConfigurationError",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "InvalidRequest",
    "Conflict",
    "NotActive",
    "ConnectionFailed",
    "AttentionRequired",
    "RetryableError",
    "RateLimited",
    "Unavailable",
    "NexusTimeout",
    "TooManyRedirects",
    "UnsupportedStrategy",
]


class NexusError(Exception):
    """Base of every error the SDK raises, and itself the error of an answer no subclass describes: a 500
    ``internal_error`` (or another 5xx but 502/503/504), a bug in Nexus, not a passing state (never retried, and it
    ends ``wait_until_active`` at once), as Go's ``*APIError`` and .NET's ``NexusException``; a 4xx no subclass
    names.

    ``http_status`` and ``code`` come from Nexus's RFC 9457 problem (``code`` is its stable machine-readable code,
    e.g. ``connection_not_active``, or without one what its ``type`` names after ``urn:nexus:problem:``; ``None`` for
    an answer without a problem); ``problem`` is the whole problem body
    (Nexus never puts a secret in one).
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: Optional[int] = None,
        code: Optional[str] = None,
        connection_id: Optional[str] = None,
        problem: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.connection_id = connection_id
        self.problem: Dict[str, Any] = problem or {}

    @property
    def detail(self) -> Optional[str]:
        value = self.problem.get("detail")
        return value if isinstance(value, str) else None

    def __repr__(self) -> str:
        return "%s(%r, http_status=%r, code=%r, connection_id=%r)" % (
            type(self).__name__, self.message, self.http_status, self.code, self.connection_id)


class ConfigurationError(NexusError, ValueError):
    """The client is missing its URL or API key, or an argument is invalid."""


class Unauthorized(NexusError):
    """401: the API key is missing, wrong or revoked."""


class Forbidden(NexusError):
    """403: the API key may not do this (e.g. ``credentials_not_readable``, ``workspace_not_allowed``)."""


class NotFound(NexusError):
    """404: no such connection, or one outside the API key's workspaces (Nexus does not tell them apart)."""


class InvalidRequest(NexusError):
    """400 or 422: Nexus refused the input (``validation_failed`` carries ``errors`` per field)."""

    @property
    def errors(self) -> Dict[str, Any]:
        value = self.problem.get("errors")
        return value if isinstance(value, dict) else {}


class Conflict(NexusError):
    """409 other than a connection that is not active (e.g. ``refresh_not_supported``, ``credentials_unusable``)."""


class NotActive(NexusError):
    """409 ``connection_not_active``: the connection is ``pending`` (consent not completed yet) or ``failed``.

    ``connection_status`` is the connection's status, ``reason`` its ``error`` (when Nexus gives one). Never retried.
    """

    def __init__(self, message: str, *, connection_status: Optional[str] = None, reason: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.connection_status = connection_status
        self.reason = reason

    def __repr__(self) -> str:
        return "%s(%r, connection_id=%r, connection_status=%r, reason=%r)" % (
            type(self).__name__, self.message, self.connection_id, self.connection_status, self.reason)


class ConnectionFailed(NotActive, Conflict):
    """409 ``connection_failed``: credentials were submitted to a connection that has failed; request a new one.
    ``connection_status`` is ``failed`` and ``connection_id`` the connection of the call. A ``NotActive`` (as in the
    other SDKs), and still a ``Conflict``, which this answer raised before."""


class AttentionRequired(NotActive):
    """The connection is ``attention_required``: the provider rejected the refresh (``reason``: ``invalid_grant`` or
    the provider's code) or the token expired without a refresh token (``token_expired``). The user must connect
    again (``request_connection``); the SDK never retries it."""


class RetryableError(NexusError):
    """A transient failure: 429, 502/503/504, or no answer. ``retry_after`` is the server's ``Retry-After`` in
    seconds (or ``None``). The SDK retries these itself, with backoff and jitter, for idempotent requests only, but
    for a timeout (see the README's Retries). A 500 is not one: it is a plain ``NexusError``."""

    #: No answer because the call timed out: not retried.
    _timed_out = False

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return "%s(%r, http_status=%r, code=%r, connection_id=%r, retry_after=%r)" % (
            type(self).__name__, self.message, self.http_status, self.code, self.connection_id, self.retry_after)


class RateLimited(RetryableError):
    """429: Nexus asks this caller to slow down; ``retry_after`` says for how long. (503 ``aws_sts_throttled`` is
    ``Unavailable``: AWS STS throttles Nexus, not this caller.)"""


class Unavailable(RetryableError):
    """502/503/504 only, or Nexus could not be reached or did not answer in time (``http_status`` is ``None`` then;
    a timeout is not retried). A 500 ``internal_error`` (or another 5xx) is a plain ``NexusError``.
    ``refresh_unavailable``: the token expired while the provider was unreachable; the connection is still active.
    ``aws_sts_throttled``: AWS STS is throttling Nexus's AssumeRole calls; try again after ``retry_after``."""


class NexusTimeout(NexusError, TimeoutError):
    """A wait (``wait_until_active``, or a shared fetch) ran out of time."""


class TooManyRedirects(NexusError):
    """:meth:`~nexus_sdk.NexusClient.bridge` was redirected a 21st time on the connection's Bridge: at most 20
    redirects are followed, and one more is this error, as in the Go, TypeScript and .NET SDKs (directly and through
    the Bridge). ``http_status`` is the status of that 21st redirect."""


class UnsupportedStrategy(NexusError):
    """The token response describes a strategy this SDK cannot apply; send through the Bridge instead."""


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """RFC 9110 section 10.2.3: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() is true for "²", which float() refuses, and for other scripts' digits.
    if re.fullmatch(r"[0-9]+", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


#: The ``type`` of Nexus's own problems: ``urn:nexus:problem:<code>``.
_PROBLEM_TYPE_PREFIX = "urn:nexus:problem:"


def error_from_response(status: int, headers: Any, body: bytes, connection_id: Optional[str] = None) -> NexusError:
    """Maps a Nexus error response (RFC 9457 problem details with ``code``) to its typed exception."""
    problem: Dict[str, Any] = {}
    if body:
        try:
            parsed = json.loads(body.decode("utf-8"))
            if isinstance(parsed, dict):
                problem = parsed
        except (ValueError, UnicodeDecodeError):
            problem = {}
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    type_ = problem.get("type")
    if not code and isinstance(type_, str) and type_.startswith(_PROBLEM_TYPE_PREFIX) and len(type_) > len(_PROBLEM_TYPE_PREFIX):
        # No code (or an empty one): the type urn:nexus:problem:<code> names it, as the Go SDK reads it.
        code = type_[len(_PROBLEM_TYPE_PREFIX):]
    cid = problem.get("connection_id") if isinstance(problem.get("connection_id"), str) else connection_id
    title = problem.get("title") if isinstance(problem.get("title"), str) else None
    where = " (connection %s)" % cid if cid else ""
    message = "Nexus answered %d%s%s%s" % (status, " " + code if code else "", ": " + title if title else "", where)
    common: Dict[str, Any] = {"http_status": status, "code": code, "connection_id": cid, "problem": problem}
    retry_after = parse_retry_after(headers.get("Retry-After") if headers is not None else None)

    if status == 409 and code == "connection_not_active":
        conn_status = problem.get("status") if isinstance(problem.get("status"), str) else None
        reason = problem.get("error") if isinstance(problem.get("error"), str) else None
        if conn_status == "attention_required":
            return AttentionRequired(
                "connection %s needs attention%s: the user must connect again" % (cid, " (" + reason + ")" if reason else ""),
                connection_status=conn_status, reason=reason, **common)
        return NotActive("connection %s is %s, not active%s" % (cid, conn_status or "not active",
                                                                 " (" + reason + ")" if reason else ""),
                         connection_status=conn_status, reason=reason, **common)
    if status == 409 and code == "connection_failed":
        # Nexus's problem names neither the connection nor its status: the connection is the call's, and it failed.
        return ConnectionFailed("connection %s is failed, not active: request a new one" % cid,
                                connection_status="failed", **common)
    if status == 401:
        return Unauthorized(message, **common)
    if status == 403:
        return Forbidden(message, **common)
    if status == 404:
        return NotFound(message, **common)
    if status in (400, 413, 415, 422):
        return InvalidRequest(message, **common)
    if status == 409:
        return Conflict(message, **common)
    if status == 429:
        return RateLimited(message, retry_after=retry_after, **common)
    if status in (502, 503, 504):
        return Unavailable(message, retry_after=retry_after, **common)
    # Anything else, a 500 internal_error (or another 5xx) among them: a bug in Nexus, not a passing state, so the
    # generic error, as Go's *APIError and .NET's NexusException.
    return NexusError(message, **common)
