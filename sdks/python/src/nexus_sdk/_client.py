"""The Nexus client: the gateway API, a credential cache with single-flight fetches, and sending requests."""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple, TypeVar, Union
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit

from ._credentials import Body, Credentials, origin_of
from ._errors import (
    AttentionRequired,
    ConfigurationError,
    Conflict,
    NexusError,
    NexusTimeout,
    NotActive,
    RetryableError,
    TooManyRedirects,
    Unavailable,
    error_from_response,
)
from ._http import (IDEMPOTENT_METHODS, Headers, HttpRequest, HttpResponse, StdlibTransport, Transport,
                    is_transport_error, redact_url)

__all__ = ["NexusClient", "Client", "Connection", "LastError", "ConnectionPage", "ConnectionRequest", "ApiKey", "Admin",
           "IDEMPOTENT_METHODS"]

log = logging.getLogger("nexus_sdk")

USER_AGENT = "nexus-sdk-python/0.1.0"
#: As fetch and the Go, TypeScript and .NET SDKs: at most this many redirects are followed through the Bridge; one more
#: raises :class:`~nexus_sdk.TooManyRedirects`.
MAX_BRIDGE_REDIRECTS = 20
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CONTENT_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "Content-Language", "Content-Location")
T = TypeVar("T")


class ConnectionRequest(NamedTuple):
    """What ``request_connection`` and ``reconnect`` return: store ``connection_id``; send the user to ``auth_url``
    when it is set.

    ``auth_url`` is ``None`` when the connection needs no consent (a machine-to-machine server): it is active already,
    and ``status`` is ``"active"``. ``status`` is the connection's status when Nexus's answer gives one; ``None`` when
    the answer is a consent URL."""

    auth_url: Optional[str]
    connection_id: str
    status: Optional[str] = None

    @classmethod
    def _from_answer(cls, data: Mapping[str, Any]) -> "ConnectionRequest":
        # A consent: {auth_url, connection_id}. A machine-to-machine server: {connection_id, status}, auth_url absent
        # (Nexus leaves nulls out) or null.
        status = data.get("status")
        return cls(data.get("auth_url") or None, data["connection_id"], status if isinstance(status, str) else None)

    def __repr__(self) -> str:  # the auth_url carries the signed state: keep it out of logs
        url = "None" if self.auth_url is None else "<%s>" % redact_url(self.auth_url)
        status = "" if self.status is None else ", status=%r" % self.status
        return "ConnectionRequest(connection_id=%r, auth_url=%s%s)" % (self.connection_id, url, status)


class LastError(NamedTuple):
    """A connection's last error: the provider's or Nexus's ``code`` and a plain-words ``message``. Never a secret."""

    code: str
    message: str


class Connection:
    """A connection as Nexus describes it (``GET /v1/connections/{id}``), with its health. Times are Unix seconds.

    ``connection_config``: the per-connection values of the provider's URLs (``{"shop": "acme"}``), empty when none;
    ``granted_scopes``: what the provider granted (``None`` while nothing is); ``last_refreshed_at``,
    ``next_refresh_at``: ``None`` when unset; ``consecutive_failures``: transient refresh failures in a row;
    ``last_error``: a :class:`LastError` or ``None``; ``reconnecting``: a reconnect waits for the user's
    consent (the current credentials keep working until it completes).
    """

    __slots__ = ("connection_id", "status", "provider", "workspace_id", "scopes", "created_at", "updated_at",
                 "expires_at", "error", "error_description", "connection_config", "granted_scopes",
                 "last_refreshed_at", "next_refresh_at", "consecutive_failures", "last_error", "reconnecting", "raw")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.raw: Dict[str, Any] = dict(data)
        self.connection_id: str = str(data.get("connection_id") or "")
        self.status: str = str(data.get("status") or "")
        self.provider: Optional[str] = data.get("provider")
        self.workspace_id: Optional[str] = data.get("workspace_id")
        self.scopes: List[str] = list(data.get("scopes") or [])
        self.created_at: Optional[int] = data.get("created_at")
        self.updated_at: Optional[int] = data.get("updated_at")
        self.expires_at: Optional[int] = data.get("expires_at")
        self.error: Optional[str] = data.get("error")
        self.error_description: Optional[str] = data.get("error_description")
        self.connection_config: Dict[str, str] = dict(data.get("connection_config") or {})
        granted = data.get("granted_scopes")
        self.granted_scopes: Optional[List[str]] = list(granted) if granted is not None else None
        self.last_refreshed_at: Optional[int] = data.get("last_refreshed_at")
        self.next_refresh_at: Optional[int] = data.get("next_refresh_at")
        self.consecutive_failures: int = int(data.get("consecutive_failures") or 0)
        last_error = data.get("last_error")
        self.last_error: Optional[LastError] = (
            LastError(str(last_error.get("code") or ""), str(last_error.get("message") or ""))
            if isinstance(last_error, Mapping) else None)
        self.reconnecting: bool = data.get("reconnecting") is True

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def __repr__(self) -> str:
        return "Connection(connection_id=%r, status=%r, provider=%r, workspace_id=%r%s)" % (
            self.connection_id, self.status, self.provider, self.workspace_id,
            ", error=%r" % self.error if self.error else "")


class ConnectionPage(NamedTuple):
    """One page of ``GET /v1/connections``: pass ``next_cursor`` back as ``cursor`` (``None`` on the last page)."""

    connections: List[Connection]
    next_cursor: Optional[str]


class ApiKey:
    """An API key created by ``Admin.create_api_key``; ``api_key`` is shown once by Nexus and never in ``repr``."""

    __slots__ = ("id", "name", "workspaces", "can_read_credentials", "api_key", "raw")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.raw = {k: v for k, v in data.items() if k != "api_key"}
        self.id: str = str(data.get("id") or "")
        self.name: Optional[str] = data.get("name")
        self.workspaces: List[str] = list(data.get("workspaces") or [])
        self.can_read_credentials: Optional[bool] = data.get("can_read_credentials")
        self.api_key: str = str(data.get("api_key") or "")

    def __repr__(self) -> str:
        return "ApiKey(id=%r, name=%r, workspaces=%r, api_key=<redacted>)" % (self.id, self.name, self.workspaces)


class _Flight:
    __slots__ = ("event", "result", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None


def _replayable(body: Any) -> bool:
    return body is None or isinstance(body, (bytes, bytearray, memoryview, str))


def bridge_scope(nexus_url: str, url: str) -> Callable[[str], bool]:
    """Where the Nexus API key of a request to ``url`` may go again on a redirect: Nexus's own origin (scheme, host,
    port), no user info, and the Bridge prefix the request was sent under (``/v1/bridge/{id}`` for that same
    connection, or ``/v1/proxy``, whose connection header a redirect keeps), with no dot segment, escaped or not,
    that leads out of it. The Bridge rewrites a provider's redirect inside its API to that prefix; any other
    ``Location`` (the provider's host outside its API, another connection's Bridge) is out of scope. A request to
    another Nexus URL keeps the key within Nexus's base URL."""
    origin = origin_of(nexus_url)
    base = urlsplit(nexus_url).path.rstrip("/")
    path = urlsplit(url).path
    prefix = base
    if path.startswith(base + "/v1/bridge/"):
        prefix = base + "/v1/bridge/" + path[len(base + "/v1/bridge/"):].split("/", 1)[0]
    elif path == base + "/v1/proxy" or path.startswith(base + "/v1/proxy/"):
        prefix = base + "/v1/proxy"

    def within(other: str) -> bool:
        parts = urlsplit(other)
        if origin_of(other) != origin or parts.username is not None or parts.password is not None:
            return False
        if parts.path != prefix and not parts.path.startswith(prefix + "/"):
            return False
        return not any(unquote(segment) in (".", "..") for segment in parts.path.split("/"))

    return within


def _as_bytes(body: Body) -> Optional[bytes]:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


class NexusClient:
    """A client of one Nexus deployment.

    ``url`` and ``api_key`` default to ``NEXUS_URL`` and ``NEXUS_API_KEY``. ``timeout`` (seconds) bounds each HTTP
    call to Nexus; every operation also takes its own ``timeout=``. ``transport`` sends the requests (default:
    :class:`~nexus_sdk.StdlibTransport`, ``http.client`` with keep-alive). The retry policy every Nexus SDK follows
    (the README's Retries): Nexus's transient answers (429, 502/503/504) and a connection that failed before any
    answer are retried for idempotent calls, to the API and through the Bridge alike, up to ``max_retries`` times (2:
    3 attempts in all), waiting ``Retry-After`` when given, else an exponential backoff from ``backoff`` seconds (0.25,
    then 0.5) with jitter, never beyond ``max_backoff``; a ``Retry-After`` longer than ``max_retry_wait`` (10 s) is
    raised at once instead of waited for. Never retried: a POST or PATCH, a 500, another 4xx, a timeout.
    ``clock`` (wall time, for the cache), ``sleep`` and ``monotonic`` (``wait_until_active``'s deadline) can be
    replaced, e.g. by tests.

    Credentials are cached per connection until ``cache_margin`` seconds (at most half their remaining life) before
    their ``expires_at``; credentials without an expiry for ``cache_ttl`` seconds. Concurrent callers on a cold or
    expired entry share one ``GET /v1/token``. The client is thread-safe.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = 10.0,
        transport: Optional[Transport] = None,
        max_retries: int = 2,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        max_retry_wait: float = 10.0,
        cache_margin: float = 60.0,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        url = url or os.environ.get("NEXUS_URL")
        api_key = api_key or os.environ.get("NEXUS_API_KEY")
        if not url:
            raise ConfigurationError("no Nexus URL: pass url= or set NEXUS_URL")
        if not api_key:
            raise ConfigurationError("no API key: pass api_key= or set NEXUS_API_KEY")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError("the Nexus URL must start with http:// or https://")
        self.url = url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.transport: Transport = transport if transport is not None else StdlibTransport()
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_wait = max_retry_wait
        self.cache_margin = cache_margin
        self.cache_ttl = cache_ttl
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._rand = rand
        self._lock = threading.Lock()
        self._cache: Dict[str, Tuple[float, Credentials]] = {}
        # Bumped by every invalidation (per connection; _epoch for all): a GET /v1/token that one overtook must not
        # store what it read, or a refresh, a delete or a rejection would be undone by a fetch already in flight.
        self._generations: Dict[str, int] = {}
        self._epoch = 0
        self._flights: Dict[Any, _Flight] = {}
        self.admin = Admin(self)

    def __repr__(self) -> str:
        return "NexusClient(url=%r, api_key=<redacted>)" % self.url

    def __enter__(self) -> "NexusClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    # -- low level -----------------------------------------------------------------------------------------------

    def _backoff_delay(self, attempt: int, retry_after: Optional[float]) -> float:
        """Full jitter over an exponential window (attempt 0, 1, 2…), never before the server's Retry-After."""
        window = min(self.max_backoff, self.backoff * (2 ** attempt))
        delay = window * (0.5 + 0.5 * self._rand())
        if retry_after is not None:
            delay = retry_after + self.backoff * self._rand()
        return delay

    def _retrying(self, what: str, idempotent: bool, once: Callable[[], T]) -> T:
        """The retry policy's one loop, for calls to Nexus's API and requests through the Bridge alike."""
        attempt = 0
        while True:
            try:
                return once()
            except RetryableError as e:
                if not idempotent or attempt >= self.max_retries or not _transient(e):
                    raise
                if e.retry_after is not None and e.retry_after > self.max_retry_wait:
                    raise
                delay = self._backoff_delay(attempt, e.retry_after)
                log.info("nexus: %s failed (%s), retry %d in %.2fs", what, e.code or e.http_status or "unreachable",
                         attempt + 1, delay)
                self._sleep(delay)
                attempt += 1

    def _send(self, request: HttpRequest, timeout: Optional[float], what: str,
              connection_id: Optional[str] = None) -> HttpResponse:
        started = time.perf_counter()
        try:
            response = self.transport.send(request, self.timeout if timeout is None else timeout)
        except Exception as e:
            if not is_transport_error(e):
                raise
            log.debug("nexus: %s: no response (%s)", what, type(e).__name__)
            error = Unavailable("no response from %s (%s)" % (redact_url(request.url), type(e).__name__),
                                connection_id=connection_id)
            error._timed_out = isinstance(e, (socket.timeout, TimeoutError))
            raise error from None
        log.debug("nexus: %s -> %d (%.1f ms)", what, response.status, (time.perf_counter() - started) * 1000)
        return response

    def _api(self, method: str, path: str, *, body: Any = None, connection_id: Optional[str] = None,
             timeout: Optional[float] = None, idempotent: Optional[bool] = None) -> HttpResponse:
        headers = Headers({"X-API-Key": self._api_key, "Accept": "application/json", "User-Agent": USER_AGENT})
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = HttpRequest(method, self.url + path, headers, data)
        what = "%s %s" % (method, path)
        attempts = [0]

        def once() -> HttpResponse:
            attempts[0] += 1
            response = self._send(request, timeout, what, connection_id)
            if method == "DELETE" and response.status == 404 and attempts[0] > 1:
                # A retried DELETE: the attempt whose answer was lost (a proxy's 502, a reset) deleted it, and gone is
                # what was asked.
                return response
            # A 3xx too: the transport follows no redirect (X-API-Key goes to Nexus only), and a redirect's body is not
            # the answer; it is a NexusError with its status, as Go's *APIError, TypeScript's RequestError.
            if response.status >= 300:
                raise error_from_response(response.status, response.headers, response.body, connection_id)
            return response

        return self._retrying(what, method in IDEMPOTENT_METHODS if idempotent is None else idempotent, once)

    def _single_flight(self, key: Any, fn: Callable[[], T], recheck: Callable[[], Optional[T]],
                       timeout: Optional[float]) -> T:
        with self._lock:
            found = recheck()
            if found is not None:
                return found
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            wait = (self.timeout * (self.max_retries + 2)) if timeout is None else timeout
            if not flight.event.wait(wait):
                raise NexusTimeout("gave up waiting for a shared credential fetch after %.1fs" % wait)
            if flight.error is not None:
                raise flight.error
            return flight.result  # type: ignore[no-any-return]
        try:
            flight.result = fn()
            return flight.result  # type: ignore[no-any-return]
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.event.set()

    # -- connections ---------------------------------------------------------------------------------------------

    def request_connection(self, workspace_id: str, provider_name: str, return_url: Optional[str] = None, *,
                           scopes: Optional[Iterable[str]] = None, connection_config: Optional[Mapping[str, str]] = None,
                           timeout: Optional[float] = None) -> ConnectionRequest:
        """``POST /v1/request-connection``: a pending connection and the URL to send the user to. A
        machine-to-machine server's connection needs no consent: it is active at once, ``auth_url`` is ``None`` and
        ``status`` ``"active"``. ``connection_config`` gives per-connection values the provider's URLs need
        (``{"shop": "acme"}``); Nexus asks the user for those missing. Not retried."""
        body: Dict[str, Any] = {"workspace_id": workspace_id, "provider_name": provider_name}
        if return_url is not None:
            body["return_url"] = return_url
        if scopes is not None:
            body["scopes"] = list(scopes)
        if connection_config:
            body["connection_config"] = dict(connection_config)
        data = self._api("POST", "/v1/request-connection", body=body, timeout=timeout).json()
        return ConnectionRequest._from_answer(data)

    def get_connection(self, connection_id: str, *, timeout: Optional[float] = None) -> Connection:
        return Connection(self._api("GET", "/v1/connections/" + quote(connection_id, safe=""),
                                    connection_id=connection_id, timeout=timeout).json())

    def list_connections(self, workspace_id: Optional[str] = None, *, status: Optional[str] = None,
                         provider: Optional[str] = None, limit: Optional[int] = None,
                         timeout: Optional[float] = None) -> List[Connection]:
        """The first page, newest first (``limit`` per page, Nexus's default 100). :meth:`iter_connections` walks
        every page; :meth:`list_connections_page` returns one with its cursor."""
        return self.list_connections_page(workspace_id, status=status, provider=provider, limit=limit,
                                          timeout=timeout).connections

    def list_connections_page(self, workspace_id: Optional[str] = None, *, status: Optional[str] = None,
                              provider: Optional[str] = None, limit: Optional[int] = None,
                              cursor: Optional[str] = None, timeout: Optional[float] = None) -> ConnectionPage:
        """One page of ``GET /v1/connections``, filtered by workspace, ``status`` and ``provider``; pass its
        ``next_cursor`` back as ``cursor`` (same filters) for the next page."""
        query = {k: v for k, v in (("workspace_id", workspace_id), ("status", status), ("provider", provider),
                                   ("limit", limit), ("cursor", cursor)) if v is not None}
        path = "/v1/connections" + ("?" + urlencode(query) if query else "")
        data = self._api("GET", path, timeout=timeout).json() or {}
        return ConnectionPage([Connection(c) for c in data.get("connections", [])], data.get("next_cursor") or None)

    def iter_connections(self, workspace_id: Optional[str] = None, *, status: Optional[str] = None,
                         provider: Optional[str] = None, page_size: Optional[int] = None,
                         timeout: Optional[float] = None) -> Iterator[Connection]:
        """Every connection the filters select, newest first, fetching page after page (``page_size`` each) as the
        iteration goes::

            for connection in nexus.iter_connections(status="attention_required", provider="google"):
                ...
        """
        cursor: Optional[str] = None
        while True:
            page = self.list_connections_page(workspace_id, status=status, provider=provider, limit=page_size,
                                              cursor=cursor, timeout=timeout)
            for connection in page.connections:
                yield connection
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def reconnect(self, connection_id: str, *, scopes: Optional[Iterable[str]] = None,
                  return_url: Optional[str] = None, timeout: Optional[float] = None) -> ConnectionRequest:
        """``POST /v1/connections/{id}/reconnect``: a new consent for the **same** connection id (send the user to
        ``auth_url``). The current credentials keep working until the user completes it; then Nexus swaps in the new
        tokens and revokes the old ones at the provider. A machine-to-machine server's connection needs no consent:
        Nexus gets it a new token at once, ``auth_url`` is ``None`` and ``status`` ``"active"``. ``Conflict``
        (``not_an_oauth_connection``) for a provider that takes credentials (replace those with
        :meth:`submit_credentials`). Not retried."""
        body: Dict[str, Any] = {}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if return_url is not None:
            body["return_url"] = return_url
        data = self._api("POST", "/v1/connections/%s/reconnect" % quote(connection_id, safe=""), body=body,
                         connection_id=connection_id, timeout=timeout).json()
        return ConnectionRequest._from_answer(data)

    def delete_connection(self, connection_id: str, *, timeout: Optional[float] = None) -> None:
        """Revokes the tokens at the provider (best effort) and deletes the connection; later calls get NotFound.
        Retried as an idempotent call: a 404 on a retry is success (the attempt whose answer was lost deleted it)."""
        self.invalidate(connection_id)
        try:
            self._api("DELETE", "/v1/connections/" + quote(connection_id, safe=""), connection_id=connection_id,
                      timeout=timeout)
        finally:
            self.invalidate(connection_id)

    def refresh(self, connection_id: str, *, timeout: Optional[float] = None) -> Connection:
        """``POST /v1/refresh/{id}``: refresh now. Drops the cached credentials. Raises ``AttentionRequired`` when
        the provider rejects the grant, ``Conflict`` (``refresh_not_supported``) without a refresh token."""
        self.invalidate(connection_id)
        try:
            data = self._api("POST", "/v1/refresh/" + quote(connection_id, safe=""), connection_id=connection_id,
                             timeout=timeout).json()
        finally:
            self.invalidate(connection_id)
        return Connection(data)

    def wait_until_active(self, connection_id: str, timeout: float = 300.0, *, poll_interval: float = 0.5,
                          max_poll_interval: float = 5.0) -> Connection:
        """Polls the connection until it is ``active`` and not ``reconnecting`` (a reconnect waiting for the user's
        consent keeps polling, whatever the status). Raises ``AttentionRequired``/``NotActive`` as soon as it is
        ``attention_required``/``failed``, ``NexusTimeout`` after ``timeout`` seconds. A poll that fails transiently
        (a ``RetryableError``: what the retry policy retries, ``RateLimited``, ``Unavailable`` for a 502/503/504
        without a Nexus code or with one of ``TRANSIENT_CODES``, or Nexus unreachable; and a poll that timed out) does
        not end the wait: polling goes on (not sooner than its ``retry_after``) until the deadline, and then that last
        error is raised, since it, not the user's consent, is why the connection was not seen active. Any other error
        ends the wait at once: a 500 ``internal_error`` (a ``NexusError`` with ``http_status`` 500), a bug in Nexus,
        not a passing state, that polling through would only hide; and an ``Unavailable`` 502/503/504 with another
        code (``token_request_failed``, …), a refusal that asking again does not change."""
        deadline = self._monotonic() + timeout
        interval = poll_interval
        while True:
            wait = interval
            transient: Optional[RetryableError] = None
            remaining = deadline - self._monotonic()
            try:
                connection = self.get_connection(connection_id, timeout=max(0.1, min(self.timeout, remaining)))
            except RetryableError as e:  # 429, 502/503/504, no answer (a timeout too); not a 500
                if _refusal(e):
                    raise
                transient = e
                wait = max(wait, e.retry_after or 0.0)
            else:
                self._raise_unless_pending(connection_id, connection)
                if connection.status == "active" and not connection.reconnecting:
                    return connection
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                if transient is not None:
                    raise transient
                raise NexusTimeout("connection %s still pending after %.1fs" % (connection_id, timeout),
                                   connection_id=connection_id)
            self._sleep(min(wait, remaining))
            interval = min(max_poll_interval, interval * 1.5)

    @staticmethod
    def _raise_unless_pending(connection_id: str, connection: Connection) -> None:
        """Raises ``AttentionRequired``/``NotActive`` for a connection that cannot become active any more. Not while
        it is ``reconnecting``: a reconnect keeps an ``active`` or ``attention_required`` status until the user
        completes the new consent, and a consent that fails clears ``reconnecting`` (the status then decides)."""
        if connection.status in ("active", "pending") or connection.reconnecting:
            return
        if connection.status == "attention_required":
            raise AttentionRequired("connection %s needs attention%s" % (
                connection_id, " (%s)" % connection.error if connection.error else ""),
                connection_id=connection_id, connection_status=connection.status, reason=connection.error)
        raise NotActive("connection %s is %s%s" % (
            connection_id, connection.status, " (%s)" % connection.error if connection.error else ""),
            connection_id=connection_id, connection_status=connection.status, reason=connection.error)

    def submit_credentials(self, connection_id: str, fields: Mapping[str, Any], *,
                           timeout: Optional[float] = None) -> Connection:
        """``POST /v1/connections/{id}/credentials``: capture an API key, Basic or AWS credentials for a pending
        connection (the JSON alternative to the form at its ``auth_url``). Drops the cached credentials."""
        data = self._api("POST", "/v1/connections/%s/credentials" % quote(connection_id, safe=""),
                         body=dict(fields), connection_id=connection_id, timeout=timeout).json()
        # The connection's credentials are the ones just submitted: a cached copy of the previous ones must not be
        # served any more (as the Go and TypeScript SDKs do).
        self.invalidate(connection_id)
        return Connection(data)

    # -- credentials ---------------------------------------------------------------------------------------------

    def _fresh_until(self, creds: Credentials, now: float) -> float:
        if creds.expires_at is None:
            return now + self.cache_ttl
        left = creds.expires_at - now
        if left <= 0:
            return now
        return now + left - min(self.cache_margin, left / 2)

    def _cached(self, connection_id: str) -> Optional[Credentials]:
        entry = self._cache.get(connection_id)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        return None

    def _generation(self, connection_id: str) -> Tuple[int, int]:
        return self._epoch, self._generations.get(connection_id, 0)

    def _fetch(self, connection_id: str, timeout: Optional[float],
               generation: Optional[Tuple[int, int]] = None) -> Credentials:
        if generation is None:
            generation = self._generation(connection_id)
        response = self._api("GET", "/v1/token/" + quote(connection_id, safe=""), connection_id=connection_id,
                             timeout=timeout)
        creds = Credentials.from_token_response(connection_id, response.json() or {})
        with self._lock:
            # A fetch that an invalidation overtook (refresh, delete_connection, a rejection) is handed to its
            # callers but not cached: what it read may be the very credential that was just dropped.
            if self._generation(connection_id) == generation:
                self._cache[connection_id] = (self._fresh_until(creds, self._clock()), creds)
        return creds

    def credentials(self, connection_id: str, *, timeout: Optional[float] = None) -> Credentials:
        """The connection's credentials, from the cache while they are fresh, else from ``GET /v1/token/{id}``
        (one request, whatever the number of concurrent callers). When that fetch fails transiently (Nexus
        unreachable or busy: a 429, a 502/503/504 without a Nexus code or with one of ``TRANSIENT_CODES``, no answer,
        a timeout) while the cached credentials have not expired, the cached ones are returned, and Nexus asked
        again after 5 s at most; any other error is raised (a 500, a 502/503/504 refusal such as
        ``token_request_failed``, ``AttentionRequired``, ``NotFound``)."""
        entry = self._cache.get(connection_id)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        # The generation is part of the flight's key: a caller that comes after an invalidation does not wait for
        # a fetch that started before it.
        generation = self._generation(connection_id)

        def fetch() -> Credentials:
            try:
                return self._fetch(connection_id, timeout, generation)
            except RetryableError as e:  # 429, 502/503/504, no answer (a timeout too); not a 500
                stale = None if _refusal(e) else self._stale(connection_id, generation)
                if stale is None:
                    raise
                return stale

        return self._single_flight(("token", connection_id, generation), fetch,
                                   lambda: self._cached(connection_id), timeout)

    def _stale(self, connection_id: str, generation: Tuple[int, int]) -> Optional[Credentials]:
        """The cached credentials to serve while Nexus is unreachable or busy (as Nexus itself serves a valid token
        while the provider is down): due for a fetch but not expired, and not invalidated since the fetch started.
        They are then used for ``_STALE_RETRY`` seconds before the next try. ``None`` when there are none, when they
        have no ``expires_at`` or have expired."""
        with self._lock:
            entry = self._cache.get(connection_id)
            if entry is None or self._generation(connection_id) != generation or entry[1].expires_at is None:
                return None
            now = self._clock()
            creds = entry[1]
            if now >= creds.expires_at:
                return None
            self._cache[connection_id] = (min(now + _STALE_RETRY, creds.expires_at), creds)
            return creds

    get_credentials = credentials

    def invalidate(self, connection_id: Optional[str] = None) -> None:
        """Forgets cached credentials (of one connection, or all); a fetch in flight meanwhile does not store its
        result."""
        with self._lock:
            if connection_id is None:
                self._epoch += 1
                self._cache.clear()
            else:
                self._generations[connection_id] = self._generations.get(connection_id, 0) + 1
                self._cache.pop(connection_id, None)

    def credentials_after_rejection(self, connection_id: str, rejected: Credentials, *,
                                    timeout: Optional[float] = None) -> Credentials:
        """After a provider refused ``rejected`` (401): the credentials to send the request again with, or
        ``rejected`` itself when there are none (compare with :meth:`Credentials.same_secret`; the 401 then stands).

        OAuth 2.0 credentials are refreshed once (``POST /v1/refresh``), then read again; when Nexus answers
        ``refresh_not_supported`` (no refresh token) nothing is read, and ``rejected`` comes back. Other credentials
        (API key, Basic, AWS) have nothing to refresh: they are read again, since they may have been captured anew.
        Either way, a credential equal in value to ``rejected`` is not worth a retry. Callers that were refused the
        same credentials at the same time share one refresh. Raises ``AttentionRequired`` if the provider rejects
        the grant, and the refresh's other errors (``Unavailable``…). As the Go, TypeScript and .NET SDKs."""

        def newer() -> Optional[Credentials]:
            entry = self._cache.get(connection_id)
            # By value, not identity: another copy of the rejected secret (parsed again, or from an older fetch)
            # is not newer, and handing it back would skip the refresh.
            if entry is not None and not entry[1]._same_secret(rejected) and self._clock() < entry[0]:
                return entry[1]
            return None

        def run() -> Credentials:
            self.invalidate(connection_id)
            if rejected.type == "oauth2":
                try:
                    self.refresh(connection_id, timeout=timeout)
                except Conflict as e:
                    if e.code != "refresh_not_supported":
                        raise
                    # No refresh token: the provider's 401 stands. Nothing new to read (the next request reads
                    # the credentials again: the cached copy is gone).
                    log.debug("nexus: %s has nothing to refresh; the provider's 401 stands", connection_id)
                    return rejected
            return self._fetch(connection_id, timeout)

        return self._single_flight(("rejected", connection_id), run, newer, timeout)

    # -- calling a provider --------------------------------------------------------------------------------------

    def send(self, connection_id: str, method: str, url: str, *, headers: Optional[Mapping[str, str]] = None,
             body: Body = None, timeout: Optional[float] = None, retry_on_401: bool = True) -> HttpResponse:
        """Calls the provider's API directly with the connection's credentials applied (the plain path, through
        this client's transport). On a 401 the credentials are refreshed once (see :meth:`credentials_after_rejection`)
        and the request is sent again, unless they come back unchanged: then the 401 is returned."""
        method = method.upper()
        data = _as_bytes(body)
        creds = self.credentials(connection_id, timeout=timeout)
        response = self._send_with(creds, method, url, headers, data, timeout)
        if response.status == 401 and retry_on_401:
            fresh = self.credentials_after_rejection(connection_id, creds, timeout=timeout)
            if fresh.same_secret(creds):
                return response  # the same credential would be refused again: the 401 stands
            response = self._send_with(fresh, method, url, headers, data, timeout)
        return response

    def _send_with(self, creds: Credentials, method: str, url: str, headers: Optional[Mapping[str, str]],
                   data: Optional[bytes], timeout: Optional[float]) -> HttpResponse:
        h = Headers(headers)
        h.setdefault("User-Agent", USER_AGENT)
        send_url = creds.apply(method, url, h, data)
        return self._send(HttpRequest(method, send_url, h, data), timeout, "%s %s" % (method, redact_url(url)),
                          creds.connection_id)

    def bridge_url(self, connection_id: str, path: str = "") -> str:
        """The Bridge URL that forwards to ``path`` under the provider's ``api_base_url``."""
        return "%s/v1/bridge/%s/%s" % (self.url, quote(connection_id, safe=""), path.lstrip("/"))

    def bridge(self, connection_id: str, method: str, path: str, *, headers: Optional[Mapping[str, str]] = None,
               body: Body = None, params: Optional[Union[Mapping[str, str], List[Tuple[str, str]]]] = None,
               timeout: Optional[float] = None, follow_redirects: bool = True) -> HttpResponse:
        """Sends a request through the Bridge: Nexus applies the credential, the app never holds it. The provider's
        answer is returned as it is; the Bridge's own problems (``connection_not_active``, ``upstream_timeout``…)
        raise the typed errors, and its transient ones are retried for idempotent methods.

        The Bridge follows no redirect: one inside the provider's API comes back with its ``Location`` rewritten to
        the Bridge's own path (``/v1/bridge/{id}/…``). With ``follow_redirects`` (the default) that one is followed,
        with the key, when it is on Nexus's origin and under this connection's Bridge (at most 20, and a 21st raises
        :class:`~nexus_sdk.TooManyRedirects`, as the other SDKs do; 303 and a POST's 301/302 become a GET without the
        body, the others keep method and body); any other redirect is returned as the 3xx, so the key never goes
        elsewhere."""
        method = method.upper()
        url = self.bridge_url(connection_id, path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        h = Headers(headers)
        h["X-API-Key"] = self._api_key
        h.setdefault("User-Agent", USER_AGENT)
        request = HttpRequest(method, url, h, _as_bytes(body))
        what = "%s bridge/%s/%s%s" % (method, connection_id, path.lstrip("/").partition("?")[0],
                                      "?…" if "?" in path or params else "")
        within = bridge_scope(self.url, url)
        redirects = 0
        while True:
            response = self._bridge_once(request, what, connection_id, timeout)
            location = response.headers.get("Location")
            if not follow_redirects or response.status not in _REDIRECT_STATUSES or not location:
                return response
            target = urljoin(request.url, location)
            if not within(target):
                return response  # where it goes is asked first: off the Bridge, the 3xx comes back, whatever the count
            if redirects >= MAX_BRIDGE_REDIRECTS:
                raise TooManyRedirects("too many redirects through the Bridge of connection %s (more than %d)"
                                       % (connection_id, MAX_BRIDGE_REDIRECTS), http_status=response.status,
                                       connection_id=connection_id)
            redirects += 1
            h = Headers(request.headers)
            method, data = request.method, request.body
            if (response.status == 303 and method not in ("GET", "HEAD")) or (response.status in (301, 302) and method == "POST"):
                method, data = "GET", None
                for name in _CONTENT_HEADERS:
                    h.pop(name, None)
            request = HttpRequest(method, target, h, data)
            what = "%s bridge/%s (redirected)" % (method, connection_id)

    def _bridge_once(self, request: HttpRequest, what: str, connection_id: str, timeout: Optional[float]) -> HttpResponse:
        def once() -> HttpResponse:
            response = self._send(request, timeout, what, connection_id)
            if response.status >= 400 and is_nexus_problem(response):
                raise error_from_response(response.status, response.headers, response.body, connection_id)
            return response

        return self._retrying(what, request.method in IDEMPOTENT_METHODS, once)


#: Seconds that cached credentials served over Nexus being unavailable are used before Nexus is asked again.
_STALE_RETRY = 5.0

#: The codes of Nexus's 502/503/504 problems that a later attempt may not meet (docs/errors.md): the provider or AWS
#: STS unreachable, slow or throttling, the database unavailable, a refresh not possible yet. The others are refusals
#: that sending again does not change, and may repeat work (502 ``token_request_failed``: each attempt starts another
#: client_credentials grant; ``redirect_refused``; ``aws_assume_role_failed``).
TRANSIENT_CODES = frozenset({"upstream_unreachable", "upstream_timeout", "database_unavailable", "refresh_unavailable",
                             "aws_sts_throttled"})


def _transient(e: RetryableError) -> bool:
    """What the retry policy retries: a ``RetryableError`` (429, 502/503/504, no answer at all) but a timeout (Nexus
    may be working on the call) and a refusal (``_refusal``). A 500 is not a ``RetryableError`` (``internal_error``
    is a bug, not a passing state). ``wait_until_active`` polls through every ``RetryableError`` but a refusal, a
    timeout too."""
    return not e._timed_out and not _refusal(e)


def _refusal(e: RetryableError) -> bool:
    """A 502/503/504 whose Nexus code is not in ``TRANSIENT_CODES`` (``token_request_failed``, ``redirect_refused``,
    ``aws_assume_role_failed``, …): a refusal that asking again does not change. One without a code (a proxy's
    answer) is not."""
    return e.http_status in (502, 503, 504) and bool(e.code) and e.code not in TRANSIENT_CODES


def is_nexus_problem(response: HttpResponse) -> bool:
    """Whether an error response is Nexus's own problem (``type`` ``urn:nexus:problem:…``), not the provider's."""
    if "problem+json" not in (response.headers.get("Content-Type") or ""):
        return False
    try:
        data = json.loads(response.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and str(data.get("type") or "").startswith("urn:nexus:problem:")


Client = NexusClient


class Admin:
    """Admin routes (the bootstrap ``API_KEY`` only): API keys and providers. For setup scripts and tests."""

    def __init__(self, client: NexusClient) -> None:
        self._client = client

    def create_api_key(self, name: str, workspaces: Iterable[str], *, can_read_credentials: bool = True,
                       timeout: Optional[float] = None) -> ApiKey:
        body = {"name": name, "workspaces": list(workspaces), "can_read_credentials": can_read_credentials}
        return ApiKey(self._client._api("POST", "/v1/admin/api-keys", body=body, timeout=timeout).json())

    def revoke_api_key(self, key_id: str, *, timeout: Optional[float] = None) -> None:
        self._client._api("DELETE", "/v1/admin/api-keys/" + quote(key_id, safe=""), timeout=timeout)

    def register_provider(self, spec: Mapping[str, Any], *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``POST /v1/providers`` with the provider's JSON (see the Nexus README)."""
        return self._client._api("POST", "/v1/providers", body=dict(spec), timeout=timeout).json()  # type: ignore[no-any-return]

    def get_provider(self, name: str, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        return self._client._api("GET", "/v1/providers/" + quote(name, safe=""), timeout=timeout).json()  # type: ignore[no-any-return]

    def delete_provider(self, name: str, *, timeout: Optional[float] = None) -> None:
        self._client._api("DELETE", "/v1/providers/" + quote(name, safe=""), timeout=timeout)
