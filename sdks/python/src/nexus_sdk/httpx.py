"""``httpx`` adapter: ``httpx.Client(auth=NexusAuth(nexus, connection_id))`` (sync and async clients).

Importable only when ``httpx`` is installed (``ImportError`` otherwise).
"""

from __future__ import annotations

import asyncio
import functools
from typing import AsyncGenerator, Generator

import httpx as _httpx

from ._client import NexusClient
from ._credentials import Credentials

__all__ = ["NexusAuth", "NexusBridgeAuth"]


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
        response = yield request
        if response.status_code == 401 and self.retry_on_401:
            creds = self.client.credentials_after_rejection(self.connection_id, creds)
            self._apply(request, creds)
            yield request

    auth_flow = sync_auth_flow

    async def async_auth_flow(self, request: _httpx.Request) -> AsyncGenerator[_httpx.Request, _httpx.Response]:
        await request.aread()
        loop = asyncio.get_running_loop()
        creds = self.client._cached(self.connection_id)
        if creds is None:
            creds = await loop.run_in_executor(None, self.client.credentials, self.connection_id)
        self._apply(request, creds)
        response = yield request
        if response.status_code == 401 and self.retry_on_401:
            creds = await loop.run_in_executor(
                None, functools.partial(self.client.credentials_after_rejection, self.connection_id, creds))
            self._apply(request, creds)
            yield request


class NexusBridgeAuth(_httpx.Auth):
    """For requests to ``nexus.bridge_url(connection_id, path)``: adds the Nexus API key, to Nexus's origin only."""

    def __init__(self, client: NexusClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return "NexusBridgeAuth(url=%r)" % self.client.url

    def auth_flow(self, request: _httpx.Request) -> Generator[_httpx.Request, _httpx.Response, None]:
        if not str(request.url).startswith(self.client.url + "/"):
            raise ValueError("NexusBridgeAuth sends the API key to %s only" % self.client.url)
        request.headers["X-API-Key"] = self.client._api_key
        yield request
