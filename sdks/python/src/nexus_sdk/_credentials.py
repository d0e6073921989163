"""Credentials as ``GET /v1/token/{id}`` describes them, and how each strategy is applied to a request."""

from __future__ import annotations

import base64
import datetime as _dt
from typing import Any, Dict, List, Mapping, MutableMapping, Optional, Tuple, Union
from urllib.parse import quote, urlsplit, urlunsplit

from . import sigv4
from ._errors import UnsupportedStrategy

__all__ = ["Credentials", "OWNED_HEADERS"]

Body = Union[bytes, bytearray, memoryview, str, None]

#: Headers a strategy may set; re-applying credentials (after a refresh) replaces them.
OWNED_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")
_OWNED = frozenset(OWNED_HEADERS)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Tuple[str, str, Optional[int]]:
    """A URL's origin: scheme, host (lower case) and port (the scheme's default when none is written). A credential
    goes only to the origin of the request it was applied to, never to another one a redirect names."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _delete_ci(headers: MutableMapping[str, str], lname: str) -> None:
    """Removes every key equal to ``lname`` case-insensitively (plain dicts may hold another case)."""
    if lname in headers:
        del headers[lname]
    for key in [k for k in headers if k.lower() == lname]:
        del headers[key]


class Credentials:
    """One connection's credentials and the strategy to apply them.

    ``repr``/``str`` never show a secret: only the connection id, strategy type and field names. Read a value
    explicitly with :meth:`secret` when you really must hand it to another library.
    """

    __slots__ = ("connection_id", "strategy", "type", "expires_at", "connection_config", "_fields", "_apply",
                 "_header_value", "_header_name", "_aws", "_query")

    def __init__(self, connection_id: str, strategy: Mapping[str, Any], fields: Mapping[str, Any],
                 expires_at: Optional[float], connection_config: Optional[Mapping[str, str]] = None) -> None:
        self.connection_id = connection_id
        #: The connection's per-connection values (``{"shop": "acme"}``), empty when its provider has none. Not secret.
        self.connection_config: Dict[str, str] = dict(connection_config or {})
        self.strategy: Dict[str, Any] = dict(strategy)
        self.type: str = str(strategy.get("type") or "")
        self.expires_at = expires_at
        self._fields: Dict[str, Any] = dict(fields)
        self._header_name: Optional[str] = None
        self._header_value: Optional[str] = None
        self._aws: Optional[sigv4.AwsCredentials] = None
        self._query: Optional[str] = None
        t = self.type
        if t == "oauth2":
            token = self._require("access_token")
            token_type = str(self.strategy.get("token_type") or "Bearer")
            self._header_name, self._header_value = "Authorization", "%s %s" % (
                "Bearer" if token_type.lower() == "bearer" else token_type, token)
            self._apply = self._apply_header
        elif t == "api_key":
            key = self._require("api_key")
            where = str(self.strategy.get("in") or "header").lower()
            name = str(self.strategy.get("name") or ("Authorization" if where == "header" else "api_key"))
            value = str(self.strategy.get("prefix") or "") + key
            if where == "header":
                self._header_name, self._header_value = name, value
                self._apply = self._apply_header
            elif where == "query":
                self._header_name = name
                self._query = quote(name, safe="") + "=" + quote(value, safe="")
                self._apply = self._apply_query
            else:
                raise UnsupportedStrategy("api_key in %r is not supported" % where, connection_id=connection_id)
        elif t == "basic_auth":
            pair = "%s:%s" % (self._require("username"), self._fields.get("password") or "")
            self._header_name = "Authorization"
            self._header_value = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
            self._apply = self._apply_header
        elif t == "aws_sigv4":
            self._aws = sigv4.AwsCredentials(self._require("access_key_id"), self._require("secret_access_key"),
                                             self._fields.get("session_token") or None)
            if not self.strategy.get("region") or not self.strategy.get("service"):
                raise UnsupportedStrategy("the aws_sigv4 strategy names no region or service",
                                          connection_id=connection_id)
            self._apply = self._apply_sigv4
        else:
            raise UnsupportedStrategy(
                "strategy %r cannot be applied by this SDK; send the request through the Bridge" % t,
                connection_id=connection_id)

    def _require(self, name: str) -> str:
        value = self._fields.get(name)
        if not isinstance(value, str) or not value:
            raise UnsupportedStrategy("the %s credentials have no %r" % (self.type, name),
                                      connection_id=self.connection_id)
        return value

    # -- public API ----------------------------------------------------------------------------------------------

    @property
    def field_names(self) -> List[str]:
        return sorted(self._fields)

    def secret(self, name: str) -> Any:
        """One raw credential field (e.g. ``access_token``). Prefer :meth:`apply`: it never exposes the value."""
        return self._fields[name]

    def apply(self, method: str, url: str, headers: MutableMapping[str, str], body: Body = None,
              timestamp: Optional[_dt.datetime] = None) -> str:
        """Puts the credential on a request: sets ``headers`` in place and returns the URL to send (changed only for
        an API key in the query). For ``aws_sigv4`` the request is signed, so call it last, with the final
        method, URL, headers and body."""
        return self._apply(method, url, headers, body, timestamp)

    def headers(self, method: str = "GET", url: str = "", body: Body = None) -> Dict[str, str]:
        """The headers to add, for callers that build requests themselves (not usable for a query API key)."""
        out: Dict[str, str] = {}
        if self._query is not None:
            raise UnsupportedStrategy("this API key goes in the query: use apply()", connection_id=self.connection_id)
        self._apply(method, url, out, body, None)
        return out

    # -- strategies ----------------------------------------------------------------------------------------------

    def _apply_header(self, method: str, url: str, headers: MutableMapping[str, str], body: Body,
                      timestamp: Optional[_dt.datetime]) -> str:
        name = self._header_name
        assert name is not None and self._header_value is not None
        if name not in headers:
            _delete_ci(headers, name.lower())
        headers[name] = self._header_value
        return url

    def _apply_query(self, method: str, url: str, headers: MutableMapping[str, str], body: Body,
                     timestamp: Optional[_dt.datetime]) -> str:
        assert self._query is not None and self._header_name is not None
        scheme, netloc, path, query, fragment = urlsplit(url)
        prefix = quote(self._header_name, safe="") + "="
        kept = [p for p in query.split("&") if p and not p.startswith(prefix) and p != prefix[:-1]] if query else []
        kept.append(self._query)
        return urlunsplit((scheme, netloc, path, "&".join(kept), fragment))

    def _redact_url(self, url: str) -> str:
        """``url`` with the value of this credential's query parameter (an API key in the query) replaced by
        ``[redacted]``; unchanged for the other strategies. For the URL an adapter leaves on its response, which
        ``raise_for_status()`` and logs print."""
        if self._query is None or self._header_name is None:
            return url
        scheme, netloc, path, query, fragment = urlsplit(url)
        if not query:
            return url
        prefix = quote(self._header_name, safe="") + "="
        parts = [prefix + "[redacted]" if p.startswith(prefix) else p for p in query.split("&")]
        return urlunsplit((scheme, netloc, path, "&".join(parts), fragment))

    def _apply_sigv4(self, method: str, url: str, headers: MutableMapping[str, str], body: Body,
                     timestamp: Optional[_dt.datetime]) -> str:
        assert self._aws is not None
        for key in [k for k in headers if k.lower() in _OWNED]:
            del headers[key]
        result = sigv4.sign(method, url, list(headers.items()), body, self._aws, str(self.strategy["region"]),
                            str(self.strategy["service"]), timestamp)
        for name, value in result.headers:
            headers[name] = value
        return url

    def _header_names(self) -> List[str]:
        """The headers :meth:`apply` sets (none for an API key in the query): what must not follow a redirect."""
        if self._aws is not None:
            return list(OWNED_HEADERS)
        return [self._header_name] if self._header_name is not None and self._query is None else []

    def same_secret(self, other: "Credentials") -> bool:
        """Whether ``other`` holds the same secret (the same strategy type and string fields), whatever the object.
        Fields that are not strings (a numeric ``expires_at``) are no secret and are not compared, as in the Go,
        TypeScript and .NET SDKs, which keep only the string fields."""
        return self is other or (self.type == other.type and self._string_fields() == other._string_fields())

    def _string_fields(self) -> Dict[str, str]:
        return {k: v for k, v in self._fields.items() if isinstance(v, str)}

    _same_secret = same_secret

    def __repr__(self) -> str:
        return "Credentials(connection_id=%r, type=%r, fields=%r, expires_at=%r)" % (
            self.connection_id, self.type, self.field_names, self.expires_at)

    __str__ = __repr__

    @classmethod
    def from_token_response(cls, connection_id: str, payload: Mapping[str, Any]) -> "Credentials":
        strategy = payload.get("strategy") or {}
        fields = payload.get("credentials") or {}
        expires = payload.get("expires_at")
        if expires is None and isinstance(fields, Mapping):
            expires = fields.get("expires_at")
        config = payload.get("connection_config")
        return cls(connection_id, strategy if isinstance(strategy, Mapping) else {},
                   fields if isinstance(fields, Mapping) else {},
                   float(expires) if isinstance(expires, (int, float)) else None,
                   config if isinstance(config, Mapping) else None)
