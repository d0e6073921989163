"""asyncio front of :class:`~nexus_sdk.NexusClient`: the same operations as coroutines.

The work runs in the event loop's default executor on the thread-safe synchronous client, so the cache and its
single-flight fetches are shared with synchronous callers; a cached credential is returned without leaving the
event loop. Use :mod:`nexus_sdk.httpx` with ``httpx.AsyncClient`` to call providers.

>>> nexus = AsyncNexusClient()
>>> creds = await nexus.credentials(connection_id)
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Callable, Iterable, List, Mapping, Optional, TypeVar

from ._client import Connection, ConnectionPage, ConnectionRequest, NexusClient, _refusal
from ._credentials import Body, Credentials
from ._http import HttpResponse

__all__ = ["AsyncNexusClient"]

T = TypeVar("T")


class AsyncNexusClient:
    """Takes the arguments of :class:`~nexus_sdk.NexusClient`, or wraps one given as ``client=``."""

    def __init__(self, url: Optional[str] = None, api_key: Optional[str] = None, *,
                 client: Optional[NexusClient] = None, **options: Any) -> None:
        self.sync = client if client is not None else NexusClient(url, api_key, **options)

    def __repr__(self) -> str:
        return "AsyncNexusClient(url=%r, api_key=<redacted>)" % self.sync.url

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def credentials(self, connection_id: str, *, timeout: Optional[float] = None) -> Credentials:
        cached = self.sync._cached(connection_id)
        if cached is not None:
            return cached
        return await self._run(self.sync.credentials, connection_id, timeout=timeout)

    get_credentials = credentials

    async def request_connection(self, workspace_id: str, provider_name: str, return_url: Optional[str] = None, *,
                                 scopes: Optional[Iterable[str]] = None,
                                 connection_config: Optional[Mapping[str, str]] = None,
                                 timeout: Optional[float] = None) -> ConnectionRequest:
        return await self._run(self.sync.request_connection, workspace_id, provider_name, return_url, scopes=scopes,
                               connection_config=connection_config, timeout=timeout)

    async def get_connection(self, connection_id: str, *, timeout: Optional[float] = None) -> Connection:
        return await self._run(self.sync.get_connection, connection_id, timeout=timeout)

    async def list_connections(self, workspace_id: Optional[str] = None, *, status: Optional[str] = None,
                               provider: Optional[str] = None, limit: Optional[int] = None,
                               timeout: Optional[float] = None) -> List[Connection]:
        return await self._run(self.sync.list_connections, workspace_id, status=status, provider=provider, limit=limit,
                               timeout=timeout)

    async def list_connections_page(self, workspace_id: Optional[str] = None, *, status: Optional[str] = None,
                                    provider: Optional[str] = None, limit: Optional[int] = None,
                                    cursor: Optional[str] = None, timeout: Optional[float] = None) -> ConnectionPage:
        return await self._run(self.sync.list_connections_page, workspace_id, status=status, provider=provider,
                               limit=limit, cursor=cursor, timeout=timeout)

    async def iter_connections(self, workspace_id: Optional[str] = None, *, status: Optional[str] = None,
                               provider: Optional[str] = None, page_size: Optional[int] = None,
                               timeout: Optional[float] = None) -> AsyncIterator[Connection]:
        """``async for connection in nexus.iter_connections(...)``: every page, fetched as the iteration goes."""
        cursor: Optional[str] = None
        while True:
            page = await self.list_connections_page(workspace_id, status=status, provider=provider, limit=page_size,
                                                    cursor=cursor, timeout=timeout)
            for connection in page.connections:
                yield connection
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def reconnect(self, connection_id: str, *, scopes: Optional[Iterable[str]] = None,
                        return_url: Optional[str] = None, timeout: Optional[float] = None) -> ConnectionRequest:
        return await self._run(self.sync.reconnect, connection_id, scopes=scopes, return_url=return_url,
                               timeout=timeout)

    async def delete_connection(self, connection_id: str, *, timeout: Optional[float] = None) -> None:
        await self._run(self.sync.delete_connection, connection_id, timeout=timeout)

    async def refresh(self, connection_id: str, *, timeout: Optional[float] = None) -> Connection:
        return await self._run(self.sync.refresh, connection_id, timeout=timeout)

    async def submit_credentials(self, connection_id: str, fields: Mapping[str, Any], *,
                                 timeout: Optional[float] = None) -> Connection:
        return await self._run(self.sync.submit_credentials, connection_id, fields, timeout=timeout)

    async def wait_until_active(self, connection_id: str, timeout: float = 300.0, *, poll_interval: float = 0.5,
                                max_poll_interval: float = 5.0) -> Connection:
        """Polls without holding an executor thread between polls; polls through transient errors until the
        deadline, then raises the last one, and ends at once on any other error (a 500, a 502/503/504 refusal), as
        the synchronous client does."""
        from ._errors import NexusTimeout, RetryableError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = poll_interval
        while True:
            wait = interval
            transient: Optional[RetryableError] = None
            try:
                connection = await self.get_connection(connection_id)
            except RetryableError as e:  # 429, 502/503/504, no answer (a timeout too); not a 500
                if _refusal(e):
                    raise
                transient = e
                wait = max(wait, e.retry_after or 0.0)
            else:
                # active returns; attention_required / failed raise exactly as the synchronous client does
                self.sync._raise_unless_pending(connection_id, connection)
                if connection.status == "active" and not connection.reconnecting:
                    return connection
            remaining = deadline - loop.time()
            if remaining <= 0:
                if transient is not None:
                    raise transient
                raise NexusTimeout("connection %s still pending after %.1fs" % (connection_id, timeout),
                                   connection_id=connection_id)
            await asyncio.sleep(min(wait, remaining))
            interval = min(max_poll_interval, interval * 1.5)

    async def send(self, connection_id: str, method: str, url: str, *, headers: Optional[Mapping[str, str]] = None,
                   body: Body = None, timeout: Optional[float] = None) -> HttpResponse:
        return await self._run(self.sync.send, connection_id, method, url, headers=headers, body=body, timeout=timeout)

    async def bridge(self, connection_id: str, method: str, path: str, *,
                     headers: Optional[Mapping[str, str]] = None, body: Body = None, params: Any = None,
                     timeout: Optional[float] = None, follow_redirects: bool = True) -> HttpResponse:
        return await self._run(self.sync.bridge, connection_id, method, path, headers=headers, body=body,
                               params=params, timeout=timeout, follow_redirects=follow_redirects)

    def bridge_url(self, connection_id: str, path: str = "") -> str:
        return self.sync.bridge_url(connection_id, path)

    async def aclose(self) -> None:
        self.sync.close()

    async def __aenter__(self) -> "AsyncNexusClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
