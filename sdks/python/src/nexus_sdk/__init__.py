"""Nexus SDK for Python: call a provider's API with nothing but a ``connection_id``.

>>> from nexus_sdk import NexusClient
>>> nexus = NexusClient()                      # NEXUS_URL, NEXUS_API_KEY
>>> r = nexus.send(connection_id, "GET", "https://api.github.com/user")

Adapters: :mod:`nexus_sdk.requests` (``requests``), :mod:`nexus_sdk.httpx` (``httpx``), :mod:`nexus_sdk.urllib`
(``urllib.request``). Standard library only at runtime.
"""

from ._client import (
    Admin,
    ApiKey,
    Client,
    Connection,
    ConnectionPage,
    ConnectionRequest,
    LastError,
    NexusClient,
    is_nexus_problem,
)
from ._credentials import Credentials
from ._errors import (
    AttentionRequired,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NexusError,
    NexusTimeout,
    NotActive,
    NotFound,
    RateLimited,
    RetryableError,
    TooManyRedirects,
    Unauthorized,
    Unavailable,
    UnsupportedStrategy,
)
from ._http import Headers, HttpRequest, HttpResponse, StdlibTransport, Transport
from .sigv4 import AwsCredentials
from .webhooks import WebhookEvent, WebhookVerificationError, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "Admin", "ApiKey", "AttentionRequired", "AwsCredentials", "Client", "ConfigurationError", "Conflict", "Connection", "ConnectionFailed",
    "ConnectionPage", "ConnectionRequest", "Credentials", "Forbidden", "Headers", "HttpRequest", "HttpResponse", "InvalidRequest",
    "NexusClient", "NexusError", "NexusTimeout", "NotActive", "NotFound", "RateLimited", "RetryableError",
    "StdlibTransport", "TooManyRedirects", "Transport", "Unauthorized", "Unavailable", "UnsupportedStrategy", "is_nexus_problem",
    "LastError", "WebhookEvent", "WebhookVerificationError", "verify_webhook",
]
