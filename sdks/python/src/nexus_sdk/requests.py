"""``requests`` adapter: ``requests.get(url, auth=NexusAuth(nexus, connection_id))``.

Importable only when ``requests`` is installed (``ImportError`` otherwise).
"""

from __future__ import annotations

from typing import Any, Optional

import requests as _requests
from requests.auth import AuthBase

from ._client import NexusClient, _replayable
from ._credentials import Credentials
from .sigv4 import UNSIGNED_PAYLOAD

__all__ = ["NexusAuth", "NexusBridgeAuth"]


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
        if self.retry_on_401:
            request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: "_requests.Response", **kwargs: Any) -> "_requests.Response":
        request = response.request
        if response.status_code != 401 or getattr(request, "_nexus_retried", False) or not _replayable(request.body):
            return response
        old: Optional[Credentials] = getattr(request, "_nexus_credentials", None)
        response.content  # drain, so the connection can be reused
        response.close()
        creds = (self.client.credentials_after_rejection(self.connection_id, old) if old is not None
                 else self.client.credentials(self.connection_id))
        retry = request.copy()
        retry.hooks = {"response": []}
        _apply(retry, creds)
        retry._nexus_credentials = creds  # type: ignore[attr-defined]
        retry._nexus_retried = True  # type: ignore[attr-defined]
        second = response.connection.send(retry, **kwargs)  # type: ignore[attr-defined]
        second.history.append(response)
        second.request = retry
        return second  # type: ignore[no-any-return]


class NexusBridgeAuth(AuthBase):
    """For requests sent to ``nexus.bridge_url(connection_id, path)``: adds the Nexus API key, and only to Nexus's
    own origin (never to another host)."""

    def __init__(self, client: NexusClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return "NexusBridgeAuth(url=%r)" % self.client.url

    def __call__(self, request: "_requests.PreparedRequest") -> "_requests.PreparedRequest":
        if not (request.url or "").startswith(self.client.url + "/"):
            raise ValueError("NexusBridgeAuth sends the API key to %s only" % self.client.url)
        request.headers["X-API-Key"] = self.client._api_key
        return request
