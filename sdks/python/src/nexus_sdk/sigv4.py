"""AWS Signature Version 4 (``AWS4-HMAC-SHA256`` in the ``Authorization`` header), standard library only.

It follows the AWS documentation "Create a signed AWS API request" and mirrors the .NET signer in
``src/Nexus.Sdk/Aws/SigV4Signer.cs``: the same canonical URI, query and header rules, the same defaults for S3
and its variants (:data:`S3_SERVICES`: path neither normalized nor encoded again, ``x-amz-content-sha256`` sent
and signed).

>>> result = sign("GET", "https://example.amazonaws.com/", {}, b"", creds, "us-east-1", "service")
>>> headers.update(result.headers)     # Authorization, X-Amz-Date (and X-Amz-Security-Token, x-amz-content-sha256)
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import hmac
import re
import threading
from typing import Collection, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import quote as _quote, urlsplit

__all__ = [
    "AwsCredentials",
    "SigningResult",
    "sign",
    "payload_hash",
    "UNSIGNED_PAYLOAD",
    "EMPTY_PAYLOAD_HASH",
    "UNSIGNED_HEADERS",
    "S3_SERVICES",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_PAYLOAD_HASH = hashlib.sha256(b"").hexdigest()

#: Headers an HTTP stack or proxy may add, change or drop; AWS SDKs never sign them (the .NET signer's list).
UNSIGNED_HEADERS = frozenset(
    {
        "authorization", "connection", "content-length", "expect", "keep-alive", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    }
)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_SCOPE_PART = re.compile(r"^[^/\s\x00-\x1f\x7f]+$")
_SAFE = re.compile(r"[A-Za-z0-9\-._~]*")
_SAFE_PATH = re.compile(r"[A-Za-z0-9\-._~/]*")
_WS = re.compile(r"[ \t]+")
_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")

# Header names, methods and (region, service) pairs already validated: checking a known one is a set lookup.
_VALID_TOKENS: "set[str]" = set()
_VALID_SCOPES: "set[Tuple[str, str]]" = set()


def _remember(token: str) -> None:
    if len(_VALID_TOKENS) < 4096:
        _VALID_TOKENS.add(token)


HeaderInput = Union[Mapping[str, str], Iterable[Tuple[str, str]]]


class AwsCredentials:
    """AWS keys. ``repr`` shows the access key id only: the secret and the session token never appear."""

    __slots__ = ("access_key_id", "secret_access_key", "session_token")

    def __init__(self, access_key_id: str, secret_access_key: str, session_token: Optional[str] = None) -> None:
        if not access_key_id or not secret_access_key:
            raise ValueError("the access key id and the secret access key must not be empty")
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token or None

    def __repr__(self) -> str:
        return "AwsCredentials(access_key_id=%r, secret_access_key=<redacted>%s)" % (
            self.access_key_id,
            ", session_token=<redacted>" if self.session_token else "",
        )

    __str__ = __repr__


class SigningResult(NamedTuple):
    """What :func:`sign` produced. ``headers`` are the ones to add to the request (``Authorization`` included)."""

    authorization: str
    headers: List[Tuple[str, str]]
    signature: str
    signed_headers: str
    canonical_request: str
    string_to_sign: str

    def __repr__(self) -> str:  # the canonical request may hold a session token: keep it out of logs
        return "SigningResult(signed_headers=%r, signature=%r)" % (self.signed_headers, self.signature)


def payload_hash(body: Union[bytes, bytearray, memoryview, str, None]) -> str:
    """The lowercase hex SHA-256 of a body (``str`` is UTF-8 encoded; ``None`` is empty)."""
    if body is None:
        return EMPTY_PAYLOAD_HASH
    if isinstance(body, str):
        body = body.encode("utf-8")
    return hashlib.sha256(body).hexdigest()


# Signing keys depend on (secret, date, region, service) only: derive each once a day (4 HMACs saved per request).
_key_cache: "dict[Tuple[str, str, str, str], bytes]" = {}
_key_lock = threading.Lock()


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    cache_key = (secret, date, region, service)
    key = _key_cache.get(cache_key)
    if key is None:
        k = hmac.new(("AWS4" + secret).encode("utf-8"), date.encode("utf-8"), hashlib.sha256).digest()
        k = hmac.new(k, region.encode("utf-8"), hashlib.sha256).digest()
        k = hmac.new(k, service.encode("utf-8"), hashlib.sha256).digest()
        key = hmac.new(k, b"aws4_request", hashlib.sha256).digest()
        with _key_lock:
            if len(_key_cache) > 256:
                _key_cache.clear()
            _key_cache[cache_key] = key
    return key


def _uri_encode(text: Union[str, bytes], decode_percent: bool, keep_slash: bool) -> str:
    """Percent-encodes the UTF-8 bytes, leaving only RFC 3986 unreserved characters (and ``/`` for paths) as they
    are, in uppercase hex; ``decode_percent`` first decodes ``%XX`` escapes so already-encoded text is not encoded
    twice."""
    if isinstance(text, str) and (_SAFE_PATH if keep_slash else _SAFE).fullmatch(text):
        return text  # nothing to encode (the common case)
    data = text.encode("utf-8") if isinstance(text, str) else text
    if decode_percent and b"%" in data:
        data = _PCT.sub(lambda m: bytes([int(m.group(1), 16)]), data)
    return _quote(data, safe="/" if keep_slash else "")


def remove_dot_segments(path: str) -> str:
    """Removes ``.``, ``..`` and empty segments, keeping the leading slash and a trailing one (RFC 3986 5.2.4)."""
    if not path:
        return "/"
    segments: List[str] = []
    trailing = False
    for segment in path.split("/"):
        trailing = segment in ("", ".", "..")
        if segment == "..":
            if segments:
                segments.pop()
        elif not trailing:
            segments.append(segment)
    if not segments:
        return "/"
    return "/" + "/".join(segments) + ("/" if trailing else "")


@functools.lru_cache(maxsize=1024)
def canonical_uri(path: str, normalize: bool, double_encode: bool) -> str:
    if normalize:
        path = remove_dot_segments(path)
    if not path:
        return "/"
    if double_encode:
        # Every service but S3: the path as sent is URI-encoded once more ("%20" becomes "%2520").
        return _uri_encode(path, decode_percent=False, keep_slash=True)
    return path


@functools.lru_cache(maxsize=1024)
def canonical_query(query: str) -> str:
    """Each name and value decoded and encoded again (RFC 3986 unreserved kept), sorted by name then value."""
    if query.startswith("?"):
        query = query[1:]
    if not query:
        return ""
    params = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        params.append((_uri_encode(name, True, False), _uri_encode(value, True, False)))
    params.sort()
    return "&".join(n + "=" + v for n, v in params)


def _trim(value: str, name: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("the value of header %r contains a line break or NUL" % name)
    return _WS.sub(" ", value.strip(" \t"))


def _host_of(parts) -> str:  # type: ignore[no-untyped-def]
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = "[" + host + "]"
    port = parts.port
    default = 443 if parts.scheme == "https" else 80
    return host if port is None or port == default else "%s:%d" % (host, port)


#: The services signed the S3 way (no path normalization nor second encoding, ``x-amz-content-sha256`` sent): the
#: same list as Nexus's own signer (``SigV4Signer.IsS3``), so that this SDK and the Bridge sign S3 Outposts, S3 Object
#: Lambda and S3 Express requests alike; signed the generic way, their paths would not match what S3 checks.
S3_SERVICES = frozenset(("s3", "s3-outposts", "s3-object-lambda", "s3express"))


def sign(
    method: str,
    url: str,
    headers: HeaderInput,
    body: Union[bytes, bytearray, memoryview, str, None],
    credentials: AwsCredentials,
    region: str,
    service: str,
    timestamp: Optional[_dt.datetime] = None,
    *,
    payload_sha256: Optional[str] = None,
    normalize_path: Optional[bool] = None,
    double_encode_path: Optional[bool] = None,
    add_content_sha256: Optional[bool] = None,
    sign_session_token: bool = True,
    unsigned_headers: Optional[Collection[str]] = None,
) -> SigningResult:
    """Signs a request described by its parts and returns the headers to add.

    Every header given is signed except ``Authorization``, the ones in ``unsigned_headers`` (by default
    :data:`UNSIGNED_HEADERS`: hop-by-hop headers, ``Content-Length``, ``User-Agent``), and the ones the signer owns (``X-Amz-Date``; ``X-Amz-Security-Token`` and
    ``x-amz-content-sha256`` when it adds them). ``Host`` comes from ``url`` when absent. ``timestamp`` defaults
    to now (UTC); a naive datetime is taken as UTC. ``payload_sha256`` (hex, or :data:`UNSIGNED_PAYLOAD`) replaces
    hashing ``body``. ``sign_session_token=False`` adds the token header without signing it (some services want
    that). The S3 defaults (every service in :data:`S3_SERVICES`) differ: no path normalization nor second encoding,
    and ``x-amz-content-sha256`` is sent.
    """
    if method not in _VALID_TOKENS:
        if not method or not _TOKEN.match(method):
            raise ValueError("the HTTP method is not a valid token")
        _remember(method)
    if (region, service) not in _VALID_SCOPES:
        for part in (region, service):
            if not part or not _SCOPE_PART.match(part):
                raise ValueError("a region or service name cannot be empty or contain '/', spaces or control characters")
        if len(_VALID_SCOPES) < 1024:
            _VALID_SCOPES.add((region, service))
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError("the request URL must be absolute")

    if payload_sha256 is None:
        digest = payload_hash(body)
    elif payload_sha256 == UNSIGNED_PAYLOAD:
        digest = payload_sha256
    elif _HEX.match(payload_sha256):
        digest = payload_sha256.lower()
    else:
        raise ValueError("the payload hash must be a hex SHA-256 or UNSIGNED-PAYLOAD")

    s3 = service in S3_SERVICES
    normalize = (not s3) if normalize_path is None else normalize_path
    double_encode = (not s3) if double_encode_path is None else double_encode_path
    add_sha = s3 if add_content_sha256 is None else add_content_sha256
    token = credentials.session_token

    if timestamp is None:
        timestamp = _dt.datetime.now(_dt.timezone.utc)
    elif timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(_dt.timezone.utc)
    amz_date = timestamp.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]

    added: List[Tuple[str, str]] = [("X-Amz-Date", amz_date)]
    if token:
        added.append(("X-Amz-Security-Token", token))
    if add_sha:
        added.append(("x-amz-content-sha256", digest))

    if unsigned_headers is None:
        skip = UNSIGNED_HEADERS
    else:
        skip = frozenset(h.lower() for h in unsigned_headers) | {"authorization"}
    entries: List[Tuple[str, int, str]] = []
    has_host = False
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name not in _VALID_TOKENS:
            if not name or not isinstance(name, str) or not _TOKEN.match(name):
                raise ValueError("%r is not a valid header name" % (name,))
            _remember(name)
        lname = name.lower()
        if lname in skip or lname == "x-amz-date" or (token and lname == "x-amz-security-token") or (
            add_sha and lname == "x-amz-content-sha256"
        ):
            continue
        if lname == "host":
            has_host = True
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        entries.append((lname, len(entries), _trim(str(value), lname)))
    if not has_host:
        entries.append(("host", len(entries), _host_of(parts)))
    for name, value in added:
        lname = name.lower()
        if lname == "x-amz-security-token" and not sign_session_token:
            continue
        entries.append((lname, len(entries), value))
    entries.sort()  # by name; repeated names keep the order they are sent in (the index breaks ties)

    lines: List[str] = []
    names: List[str] = []
    for lname, _, value in entries:
        if names and names[-1] == lname:
            lines[-1] += "," + value
        else:
            names.append(lname)
            lines.append(lname + ":" + value)
    signed_headers = ";".join(names)

    canonical_request = "\n".join(
        (
            method,
            canonical_uri(parts.path, normalize, double_encode),
            canonical_query(parts.query),
            "\n".join(lines) + "\n",
            signed_headers,
            digest,
        )
    )
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    string_to_sign = "%s\n%s\n%s\n%s" % (
        ALGORITHM,
        amz_date,
        scope,
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
    )
    key = _signing_key(credentials.secret_access_key, date, region, service)
    signature = hmac.digest(key, string_to_sign.encode("utf-8"), "sha256").hex()
    authorization = "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        ALGORITHM,
        credentials.access_key_id,
        scope,
        signed_headers,
        signature,
    )
    return SigningResult(
        authorization,
        added + [("Authorization", authorization)],
        signature,
        signed_headers,
        canonical_request,
        string_to_sign,
    )
