"""``requests`` adapter: ``requests.get(url, auth=NexusAuth(nexus, connection_id))``.

Importable only when ``requests`` is installed (``ImportError`` otherwise).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Optional
from urllib.parse import urljoin

import requests as _requests
from requests.auth import AuthBase

from ._client import NexusClient, _replayable, bridge_scope
from ._credentials import Credentials, origin_of
from .sigv4 import UNSIGNED_PAYLOAD

__all__ = ["NexusAuth", "NexusBridgeAuth"]


def _redirect_target(response: "_requests.Response") -> Optional[str]:
    """The absolute URL a redirect answer sends ``requests`` to next, or None."""
    if not response.is_redirect:
        return None
    return urljoin(response.url, response.headers["location"])


def _strip_before_leaving(response: "_requests.Response", request: "_requests.PreparedRequest",
                          stays: Callable[[str], bool], names: Iterable[str]) -> None:
    """``requests`` builds a redirect's request as a copy of ``request`` and strips only ``Authorization`` when the
    host changes: every other header (an API key header, ``X-Amz-Security-Token``, ``X-API-Key``) would reach
    whatever host the redirect names. Called from a response hook, before that copy is made: when the redirect
    leaves the place the credential belongs to, the credential's headers go."""
    target = _redirect_target(response)
    if target is not None and not stays(target):
        for name in names:
            request.headers.pop(name, None)


def _apply(request: "_requests.PreparedRequest", creds: Credentials) -> None:
    body = request.body
    if creds.type == "aws_sigv4" and not _replayable(body):
        # A streamed body cannot be hashed without reading it: sign UNSIGNED-PAYLOAD (S3 accepts it).
        from . import sigv4
        for owned in ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"):
            request.headers.pop(owned, None)
        result = sigv4.sign(request.method or "GET", request.url or "", list(request.headers.items()), None,
                            creds._aws, creds.strategy["region"], creds.strategy["service"],  # type: ignore[arg-type]
                            payload_sha256=UNSIGNED_PAYLOAD, add_content_sha256=True)
        request.headers.update(result.headers)
        return
    request.url = creds.apply(request.method or "GET", request.url or "", request.headers, body)
    request._nexus_credentials = creds  # type: ignore[attr-defined]


class _Hops:
    """What a redirect's request needs to carry the credentials again: the client, the connection and the origin
    (scheme, host, port) of the request they were applied to."""

    __slots__ = ("client", "connection_id", "origin")

    def __init__(self, client: NexusClient, connection_id: str, origin: Any) -> None:
        self.client = client
        self.connection_id = connection_id
        self.origin = origin


class _CredentialedRequest(_requests.PreparedRequest):
    """A ``PreparedRequest`` whose redirects get the credentials applied anew. ``requests`` does not call an auth
    again on a redirect: it copies the request, points the copy at the ``Location`` (changing the method and dropping
    the body as its rules say), and sends it with the headers of the hop before, so a SigV4 signature made for
    another method, path and body would be replayed (and an API key in the query lost). ``prepare_cookies`` is the
    last step ``requests`` takes on that copy once its method, URL and body are final (``resolve_redirects``):
    there, a hop on the request's own origin is signed (or given its credentials) again, as the Go, TypeScript and
    .NET SDKs do on each hop. A hop to another origin gets nothing (and ``_strip_before_leaving`` took the
    credential's headers off it)."""

    _nexus_hops: Optional[_Hops] = None

    def copy(self) -> "_CredentialedRequest":
        p = super().copy()
        p.__class__ = _CredentialedRequest
        p._nexus_hops = self._nexus_hops
        return p  # type: ignore[return-value]

    def prepare_cookies(self, cookies: Any) -> None:
        super().prepare_cookies(cookies)
        hops = self._nexus_hops
        if hops is not None and origin_of(self.url or "") == hops.origin:
            creds = hops.client.credentials(hops.connection_id)
            _apply(self, creds)
            self._nexus_credentials = creds


class NexusAuth(AuthBase):
    """Applies a connection's credentials (Bearer, API key header or query, Basic, or a SigV4 signature) to each
    request, and again to each redirect ``requests`` follows on the request's origin (a SigV4 signature is made anew
    for the hop's method, path and body); a redirect to another origin gets none. On a 401 it renews the credentials
    once and sends the request again, when the body can be replayed (bytes, str or none) and the renewed credentials
    differ; a second 401 is returned as it is. ``AttentionRequired`` is raised if the grant is gone."""

    def __init__(self, client: NexusClient, connection_id: str, *, retry_on_401: bool = True) -> None:
        self.client = client
        self.connection_id = connection_id
        self.retry_on_401 = retry_on_401

    def __repr__(self) -> str:
        return "NexusAuth(connection_id=%r)" % self.connection_id

    def __call__(self, request: "_requests.PreparedRequest") -> "_requests.PreparedRequest":
        creds = self.client.credentials(self.connection_id)
        _apply(request, creds)
        request._nexus_credentials = creds  # type: ignore[attr-defined]
        origin = origin_of(request.url or "")
        if type(request) is _requests.PreparedRequest:
            # Its redirects on this origin get the credentials anew (see _CredentialedRequest).
            request.__class__ = _CredentialedRequest
            request._nexus_hops = _Hops(self.client, self.connection_id, origin)  # type: ignore[attr-defined]
        names = creds._header_names()

        def stays(url: str) -> bool:
            return origin_of(url) == origin

        def guard(response: "_requests.Response", **kwargs: Any) -> "_requests.Response":
            # Runs for every answer of the chain (requests copies the hooks onto each redirect's request).
            _strip_before_leaving(response, response.request, stays, names)
            return response

        request.register_hook("response", guard)
        if self.retry_on_401:
            request.register_hook("response", functools.partial(self._on_response, stays, names))
        if creds._query is not None:
            # An API key in the query: the final answer's url (which raise_for_status() prints) does not show it. A
            # redirect's keeps it, for requests to resolve the Location against.
            def redact(response: "_requests.Response", **kwargs: Any) -> "_requests.Response":
                if not response.is_redirect and response.url:
                    response.url = creds._redact_url(response.url)
                return response

            request.register_hook("response", redact)
        return request

    def _on_response(self, stays: Callable[[str], bool], names: Iterable[str], response: "_requests.Response",
                     **kwargs: Any) -> "_requests.Response":
        request = response.request
        old: Optional[Credentials] = getattr(request, "_nexus_credentials", None)
        # Only a request the credentials were applied to is retried (the caller's, or a redirect on its origin): a
        # redirect's copy to another origin (old is None) must not get them.
        if (response.status_code != 401 or old is None or getattr(request, "_nexus_retried", False)
                or not _replayable(request.body)):
            return response
        creds = self.client.credentials_after_rejection(self.connection_id, old)
        if creds.same_secret(old):
            return response  # the same credential would be refused again: the 401 stands
        response.content  # drain, so the connection can be reused
        response.close()
        retry = request.copy()
        retry.hooks = {"response": []}
        _apply(retry, creds)
        retry._nexus_credentials = creds  # type: ignore[attr-defined]
        retry._nexus_retried = True  # type: ignore[attr-defined]
        second = response.connection.send(retry, **kwargs)  # type: ignore[attr-defined]
        second.history.append(response)
        second.request = retry
        # requests follows a redirect of ``second`` by copying ``request`` (the one this hook was called for): give
        # it the new credentials, and none when that redirect leaves the origin.
        request.headers = retry.headers.copy()
        _strip_before_leaving(second, request, stays, names)
        return second  # type: ignore[no-any-return]


class NexusBridgeAuth(AuthBase):
    """For requests sent to ``nexus.bridge_url(connection_id, path)``: adds the Nexus API key, and only to Nexus's
    own URL (never to another host). The Bridge rewrites a provider's redirect inside its API to the Bridge's own
    path, which ``requests`` follows with the key; any other redirect (the provider's host outside its API, another
    connection's Bridge) is followed without it (pass ``allow_redirects=False`` to get the 3xx)."""

    def __init__(self, client: NexusClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return "NexusBridgeAuth(url=%r)" % self.client.url

    def __call__(self, request: "_requests.PreparedRequest") -> "_requests.PreparedRequest":
        if not (request.url or "").startswith(self.client.url + "/"):
            raise ValueError("NexusBridgeAuth sends the API key to %s only" % self.client.url)
        request.headers["X-API-Key"] = self.client._api_key
        within = bridge_scope(self.client.url, request.url or "")

        def guard(response: "_requests.Response", **kwargs: Any) -> "_requests.Response":
            _strip_before_leaving(response, response.request, within, ("X-API-Key",))
            return response

        request.register_hook("response", guard)
        return request
