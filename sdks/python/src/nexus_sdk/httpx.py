"""``httpx`` adapter: ``httpx.Client(auth=NexusAuth(nexus, connection_id))`` (sync and async clients).

Importable only when ``httpx`` is installed (``ImportError`` otherwise).

A client that follows redirects (``follow_redirects=True``) also needs ``event_hooks=EVENT_HOOKS``
(``ASYNC_EVENT_HOOKS`` for an ``AsyncClient``): httpx follows redirects inside the auth flow, out of its sight, and
copies every header but ``Authorization`` onto a hop to another host. The hook drops the credential's headers from
such a hop; without it, the auth raises ``ConfigurationError`` once it sees that a hop left with them.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncGenerator, Callable, Dict, Generator, Iterable, List, Optional

import httpx as _httpx

from ._client import NexusClient, bridge_scope
from ._credentials import Credentials, origin_of
from ._errors import ConfigurationError

__all__ = ["NexusAuth", "NexusBridgeAuth", "EVENT_HOOKS", "ASYNC_EVENT_HOOKS", "strip_credentials_off_origin",
           "async_strip_credentials_off_origin"]

_MARK = "nexus_sdk.credential"


class _Mark:
    """What the auth put on a request, kept in its ``extensions`` (which httpx hands on to every redirect's request):
    where the credential may go, the headers that carry it, whether the redirect hook ran, and, for a connection's
    credentials (not the Bridge's key), the request the auth sent and the auth, to apply them again to a redirect's
    request on their origin, and the redirects' requests they were applied to (``hops``)."""

    __slots__ = ("stays", "names", "guarded", "request", "auth", "hops")

    def __init__(self, stays: Callable[[str], bool], names: Iterable[str], request: _httpx.Request,
                 auth: "Optional[NexusAuth]" = None) -> None:
        self.stays = stays
        self.names = list(names)
        self.guarded = False
        self.request = request
        self.auth = auth
        self.hops: List[_httpx.Request] = []


def _hop(request: _httpx.Request) -> "Optional[_Mark]":
    """The mark of a request, after dropping the credential's headers from a hop that leaves its origin; the mark
    again when the request is a redirect's hop on the origin of a connection's credentials (they must be applied
    anew: httpx copied the hop before's headers, a SigV4 signature made for another method, path and body), else
    None."""
    mark = request.extensions.get(_MARK)
    if not isinstance(mark, _Mark):
        return None
    mark.guarded = True
    if not mark.stays(str(request.url)):
        for name in mark.names:
            request.headers.pop(name, None)
        return None
    return mark if mark.auth is not None and request is not mark.request else None


def strip_credentials_off_origin(request: _httpx.Request) -> None:
    """A ``request`` event hook (``event_hooks=EVENT_HOOKS``) that runs before every hop: httpx builds a redirect's
    request by copying every header but ``Authorization`` (and only when the origin changes), so an API key header,
    ``X-Amz-Security-Token`` or the Bridge's ``X-API-Key`` would reach whatever host the redirect names. Here a hop
    that leaves the credential's origin (the Bridge: Nexus's URL) loses those headers, and a hop on the origin of a
    connection's credentials gets them applied anew (a SigV4 signature for its own method, path and body; an API
    key in the query on its URL), as the Go, TypeScript and .NET SDKs do on each hop."""
    mark = _hop(request)
    if mark is not None and mark.auth is not None:
        request.read()
        mark.auth._apply(request, mark.auth.client.credentials(mark.auth.connection_id))
        mark.hops.append(request)


async def async_strip_credentials_off_origin(request: _httpx.Request) -> None:
    """:func:`strip_credentials_off_origin` for an ``AsyncClient`` (``event_hooks=ASYNC_EVENT_HOOKS``)."""
    mark = _hop(request)
    if mark is not None and mark.auth is not None:
        await request.aread()
        auth = mark.auth
        creds = auth.client._cached(auth.connection_id)
        if creds is None:
            creds = await asyncio.get_running_loop().run_in_executor(None, auth.client.credentials, auth.connection_id)
        auth._apply(request, creds)
        mark.hops.append(request)


#: ``httpx.Client(auth=..., follow_redirects=True, event_hooks=EVENT_HOOKS)``.
EVENT_HOOKS: Dict[str, List[Callable[..., Any]]] = {"request": [strip_credentials_off_origin]}
#: ``httpx.AsyncClient(auth=..., follow_redirects=True, event_hooks=ASYNC_EVENT_HOOKS)``.
ASYNC_EVENT_HOOKS: Dict[str, List[Callable[..., Any]]] = {"request": [async_strip_credentials_off_origin]}


def _mark(request: _httpx.Request, stays: Callable[[str], bool], names: Iterable[str],
          auth: "Optional[NexusAuth]" = None) -> _Mark:
    mark = _Mark(stays, names, request, auth)
    request.extensions[_MARK] = mark
    return mark


def _check_followed(response: _httpx.Response, mark: _Mark) -> None:
    """Raises when httpx followed a redirect away from the credential's origin without the hook: the credential
    went along, and the caller must know (and add the hook) rather than carry on."""
    if not response.history or mark.guarded:
        return
    for hop in response.history[1:] + [response]:
        if not mark.stays(str(hop.request.url)):
            raise ConfigurationError(
                "httpx followed a redirect to %s with the connection's credentials: a client that follows redirects "
                "needs event_hooks=nexus_sdk.httpx.EVENT_HOOKS (ASYNC_EVENT_HOOKS for AsyncClient)" % hop.request.url.host)


def _same_origin_as(url: str) -> Callable[[str], bool]:
    origin = origin_of(url)
    return lambda other: origin_of(other) == origin


def _redact_sent(creds: Credentials, mark: _Mark, response: Optional[_httpx.Response]) -> None:
    """Once the requests are sent, an API key in the query leaves the URLs of the answer (which
    ``raise_for_status()`` prints: ``response.url`` is its request's) and of the redirects before it. Without an
    answer (``response`` None: httpx closes the auth flow before the error it raises reaches the caller, a refused
    connection, a timeout, a hang-up), it leaves the URLs of the requests it was put on, the error's ``.request``
    among them."""
    if creds._query is None:
        return
    sent = [mark.request] + mark.hops
    if response is not None:
        sent += [r.request for r in response.history] + [response.request]
    for request in sent:
        url = str(request.url)
        redacted = creds._redact_url(url)
        if redacted != url:
            request.url = _httpx.URL(redacted)


class NexusAuth(_httpx.Auth):
    """Applies a connection's credentials to each request; on a 401, forces one refresh and sends it again (the
    body is read first, so it can always be replayed). In an ``AsyncClient`` the credential fetch, when the cache
    cannot answer, runs in the default executor so that the event loop is never blocked."""

    requires_request_body = True

    def __init__(self, client: NexusClient, connection_id: str, *, retry_on_401: bool = True) -> None:
        self.client = client
        self.connection_id = connection_id
        self.retry_on_401 = retry_on_401

    def __repr__(self) -> str:
        return "NexusAuth(connection_id=%r)" % self.connection_id

    def _apply(self, request: _httpx.Request, creds: Credentials) -> None:
        url = str(request.url)
        new_url = creds.apply(request.method, url, request.headers, request.content)
        if new_url != url:
            request.url = _httpx.URL(new_url)

    def sync_auth_flow(self, request: _httpx.Request) -> Generator[_httpx.Request, _httpx.Response, None]:
        request.read()
        creds = self.client.credentials(self.connection_id)
        self._apply(request, creds)
        mark = _mark(request, _same_origin_as(str(request.url)), creds._header_names(), self)
        response: Optional[_httpx.Response] = None
        try:
            response = yield request
            _check_followed(response, mark)
            # A 401 from another host (a redirect's, which got no credentials) says nothing about them.
            if response.status_code == 401 and self.retry_on_401 and mark.stays(str(response.request.url)):
                fresh = self.client.credentials_after_rejection(self.connection_id, creds)
                if fresh.same_secret(creds):
                    return  # the same credential would be refused again: the 401 stands
                self._apply(request, fresh)
                response = yield request
        finally:
            # Also when httpx closes the flow at a yield (GeneratorExit): the request got no answer.
            _redact_sent(creds, mark, response)

    auth_flow = sync_auth_flow

    async def async_auth_flow(self, request: _httpx.Request) -> AsyncGenerator[_httpx.Request, _httpx.Response]:
        await request.aread()
        loop = asyncio.get_running_loop()
        creds = self.client._cached(self.connection_id)
        if creds is None:
            creds = await loop.run_in_executor(None, self.client.credentials, self.connection_id)
        self._apply(request, creds)
        mark = _mark(request, _same_origin_as(str(request.url)), creds._header_names(), self)
        response: Optional[_httpx.Response] = None
        try:
            response = yield request
            _check_followed(response, mark)
            if response.status_code == 401 and self.retry_on_401 and mark.stays(str(response.request.url)):
                fresh = await loop.run_in_executor(
                    None, functools.partial(self.client.credentials_after_rejection, self.connection_id, creds))
                if fresh.same_secret(creds):
                    return  # the same credential would be refused again: the 401 stands
                self._apply(request, fresh)
                response = yield request
        finally:
            # Also when httpx closes the flow at a yield (GeneratorExit): the request got no answer.
            _redact_sent(creds, mark, response)


class NexusBridgeAuth(_httpx.Auth):
    """For requests to ``nexus.bridge_url(connection_id, path)``: adds the Nexus API key, to Nexus's URL only. The
    Bridge rewrites a provider's redirect inside its API to the Bridge's own path: with ``follow_redirects=True``
    (and the hook), httpx follows that one with the key, and any other (the provider's host outside its API,
    another connection's Bridge) without it."""

    def __init__(self, client: NexusClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return "NexusBridgeAuth(url=%r)" % self.client.url

    def auth_flow(self, request: _httpx.Request) -> Generator[_httpx.Request, _httpx.Response, None]:
        if not str(request.url).startswith(self.client.url + "/"):
            raise ValueError("NexusBridgeAuth sends the API key to %s only" % self.client.url)
        request.headers["X-API-Key"] = self.client._api_key
        mark = _mark(request, bridge_scope(self.client.url, str(request.url)), ("X-API-Key",))
        response = yield request
        _check_followed(response, mark)
