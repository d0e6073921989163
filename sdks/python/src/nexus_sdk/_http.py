"""The pluggable HTTP transport: a tiny request/response model and the default standard-library transport."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from typing import Any, Dict, Iterable, Iterator, List, Mapping, MutableMapping, Optional, Tuple, Union
from urllib.parse import urlsplit

try:  # Python 3.8+
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment,misc]

__all__ = ["Headers", "HttpRequest", "HttpResponse", "Transport", "StdlibTransport", "redact_url"]

#: Methods whose request may be sent twice with the effect of once: the retry policy's, and the only ones the default
#: transport sends again on a kept-alive connection that broke.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def redact_url(url: str) -> str:
    """The URL without its query and fragment (a query may carry an API key), for messages and logs."""
    parts = urlsplit(url)
    return "%s://%s%s%s" % (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "?…" if parts.query else "")


class Headers(MutableMapping[str, str]):
    """Case-insensitive header mapping that keeps the case it was given (one value per name)."""

    __slots__ = ("_items",)

    def __init__(self, data: Union[Mapping[str, str], Iterable[Tuple[str, str]], None] = None) -> None:
        self._items: Dict[str, Tuple[str, str]] = {}
        if data is not None:
            items = data.items() if isinstance(data, Mapping) else data
            for k, v in items:
                self[k] = v

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __setitem__(self, key: str, value: str) -> None:
        self._items[key.lower()] = (key, value)

    def __delitem__(self, key: str) -> None:
        del self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        item = self._items.get(key.lower())
        return default if item is None else item[1]

    def __repr__(self) -> str:  # names only: values may be credentials
        return "Headers(%r)" % sorted(self)


class HttpRequest:
    """A request as a transport sends it. ``repr`` shows the method and the URL without its query."""

    __slots__ = ("method", "url", "headers", "body")

    def __init__(self, method: str, url: str, headers: Optional[Mapping[str, str]] = None,
                 body: Optional[bytes] = None) -> None:
        self.method = method
        self.url = url
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body

    def __repr__(self) -> str:
        return "<HttpRequest %s %s>" % (self.method, redact_url(self.url))


class HttpResponse:
    """A response read whole. ``repr`` shows the status only."""

    __slots__ = ("status", "headers", "body", "reason")

    def __init__(self, status: int, headers: Optional[Mapping[str, str]] = None, body: bytes = b"",
                 reason: str = "") -> None:
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body
        self.reason = reason

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def __repr__(self) -> str:
        return "<HttpResponse %d>" % self.status


class Transport(Protocol):
    """Anything that sends an :class:`HttpRequest` and returns the whole :class:`HttpResponse`.

    Raise ``OSError`` (or ``http.client.HTTPException``) when no response arrived; the client maps it to
    :class:`~nexus_sdk.Unavailable`. Must not follow redirects (a followed redirect would take ``X-API-Key`` to
    whatever host it names; the client raises a 3xx from Nexus's API as a :class:`~nexus_sdk.NexusError`). Must be
    safe to call from many threads.
    """

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:  # pragma: no cover - protocol
        ...


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by the other end meanwhile (or has something unasked to
    read): readable at once. Checked before a request goes on it, so that no request is written to a connection known
    to be gone."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class StdlibTransport:
    """The default transport: ``http.client`` with one keep-alive connection per thread and origin. A kept-alive
    connection found closed before a request is replaced; one that breaks while a request is on it (the server closed
    it at that moment) has the request sent once more on a new connection only when the method is idempotent
    (:data:`IDEMPOTENT_METHODS`): a POST or PATCH may have reached the server and been acted on."""

    def __init__(self, max_response_bytes: int = 64 * 1024 * 1024) -> None:
        self._local = threading.local()
        self._max = max_response_bytes

    def _pool(self) -> Dict[Tuple[str, str, int], http.client.HTTPConnection]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("only absolute http and https URLs can be sent")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        pool = self._pool()
        for attempt in (0, 1):
            conn = pool.get(key)
            if conn is not None and _dropped(conn):
                conn.close()
                del pool[key]
                conn = None
            reused = conn is not None
            if conn is None:
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conn = cls(parts.hostname, port, timeout=timeout)
                pool[key] = conn
            else:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            try:
                conn.putrequest(request.method, target, skip_host="host" in request.headers,
                                skip_accept_encoding=True)
                body = request.body
                has_length = "content-length" in request.headers
                for name, value in request.headers.items():
                    conn.putheader(name, value)
                if body is not None and not has_length:
                    conn.putheader("Content-Length", str(len(body)))
                elif body is None and request.method in ("POST", "PUT", "PATCH") and not has_length:
                    conn.putheader("Content-Length", "0")
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read(self._max + 1)
                if len(data) > self._max:
                    conn.close()
                    del pool[key]
                    raise OSError("the response is larger than %d bytes" % self._max)
                headers = Headers(resp.getheaders())
                if resp.will_close:
                    conn.close()
                    del pool[key]
                return HttpResponse(resp.status, headers, data, resp.reason)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                pool.pop(key, None)
                # A kept-alive connection the server closed as the request went on it: the server may not have read
                # the request, or may have acted on it and closed before answering. Sent again only when harmless.
                if reused and attempt == 0 and request.method.upper() in IDEMPOTENT_METHODS:
                    continue
                raise e
            except BaseException:
                conn.close()
                pool.pop(key, None)
                raise
        raise OSError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Closes this thread's connections."""
        pool = getattr(self._local, "pool", None) or {}
        for conn in pool.values():
            conn.close()
        pool.clear()


def is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, http.client.HTTPException, socket.timeout))
