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


class NexusAuth(AuthBase):
    """Applies a connection's credentials (Bearer, API key header or query, Basic, or a SigV4 signature) to each
    request. On a 401 it forces one refresh and sends the request again, when the body can be replayed (bytes,
    str or none); a second 401 is returned as it is. ``AttentionRequired`` is raised if the grant is gone."""

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
        return request

    def _on_response(self, stays: Callable[[str], bool], names: Iterable[str], response: "_requests.Response",
                     **kwargs: Any) -> "_requests.Response":
        request = response.request
        old: Optional[Credentials] = getattr(request, "_nexus_credentials", None)
        # Only the request the credentials were applied to is retried: a redirect's copy (old is None) may be on
        # another host, which must not get them.
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
