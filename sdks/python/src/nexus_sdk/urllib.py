"""``urllib.request`` adapter: ``opener = build_opener(NexusHandler(nexus, connection_id))``; ``opener.open(url)``.

Standard library only.
"""

from __future__ import annotations

import threading
import urllib.parse as _parse
import urllib.request as _request
from typing import Any, Iterator, MutableMapping, Optional, Tuple

from ._client import NexusClient, _replayable
from ._credentials import Credentials

__all__ = ["NexusHandler"]


class _RequestHeaders(MutableMapping[str, str]):
    """A ``urllib.request.Request``'s headers as a mapping; credentials go to ``unredirected_hdrs`` so that urllib
    never copies them onto a redirected request."""

    def __init__(self, req: _request.Request) -> None:
        self._req = req

    def __getitem__(self, key: str) -> str:
        value = self._req.get_header(key.capitalize())
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: str) -> None:
        self._req.remove_header(key.capitalize())
        self._req.add_unredirected_header(key.capitalize(), value)

    def __delitem__(self, key: str) -> None:
        self._req.remove_header(key.capitalize())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._req.has_header(key.capitalize())

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self._req.header_items()])

    def __len__(self) -> int:
        return len(self._req.header_items())


class NexusHandler(_request.BaseHandler):
    """Applies a connection's credentials to every request of its opener (after urllib added ``Host`` and the body
    headers, so SigV4 signs the final request), never to a redirect towards another host; on a 401, forces one
    refresh and opens the request again when its body can be replayed."""

    handler_order = 1000  # after AbstractHTTPHandler's request processing (500)

    def __init__(self, client: NexusClient, connection_id: str, *, retry_on_401: bool = True) -> None:
        self.client = client
        self.connection_id = connection_id
        self.retry_on_401 = retry_on_401
        # The origin of the request a redirect chain started from. urllib's redirect keeps only the host
        # (origin_req_host), so an https -> http or another-port hop on the same host would look like the same
        # origin; the chain runs on the caller's thread inside one open(), so the thread remembers the rest.
        self._chain = threading.local()

    def __repr__(self) -> str:
        return "NexusHandler(connection_id=%r)" % self.connection_id

    def _apply(self, req: _request.Request, creds: Credentials) -> None:
        url = req.full_url
        new_url = creds.apply(req.get_method(), url, _RequestHeaders(req), req.data)  # type: ignore[arg-type]
        if new_url != url:
            req.full_url = new_url
        req._nexus_credentials = creds  # type: ignore[attr-defined]

    @staticmethod
    def _origin(url: str) -> Tuple[str, str, Optional[int]]:
        parts = _parse.urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)

    def http_request(self, req: _request.Request) -> _request.Request:
        if not req.unverifiable:
            self._chain.origin = self._origin(req.full_url)  # a request of the caller's, not a redirect
        elif (_request.request_host(req) != req.origin_req_host
              or self._origin(req.full_url) != getattr(self._chain, "origin", None)):
            return req  # a redirect to another origin (host, scheme or port): no credentials
        if not hasattr(req, "_nexus_url"):
            req._nexus_url = req.full_url  # type: ignore[attr-defined]
        self._apply(req, self.client.credentials(self.connection_id))
        return req

    https_request = http_request

    def http_error_401(self, req: _request.Request, fp: Any, code: int, msg: str, headers: Any) -> Optional[Any]:
        old: Optional[Credentials] = getattr(req, "_nexus_credentials", None)
        if (not self.retry_on_401 or old is None or getattr(req, "_nexus_retried", False)
                or not _replayable(req.data)):
            return None  # urllib raises HTTPError 401
        try:
            fresh = self.client.credentials_after_rejection(self.connection_id, old)
        except BaseException:
            fp.close()
            raise
        if fresh.same_secret(old):
            return None  # the same credential would be refused again: urllib raises HTTPError 401
        fp.read()
        fp.close()
        retry = _request.Request(getattr(req, "_nexus_url", req.full_url), data=req.data,
                                 headers=dict(req.headers), method=req.get_method())
        retry._nexus_retried = True  # type: ignore[attr-defined]
        return self.parent.open(retry, timeout=req.timeout)  # type: ignore[attr-defined]
