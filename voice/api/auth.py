"""Who is calling the speech API, and whether they may.

An API key (``Authorization: Bearer vk_…``), a logged-in browser session
(with Django's CSRF check, since a browser sends the cookie by itself), or, with
VOICE_API_ALLOW_ANONYMOUS, nobody. Each caller is rate-limited through
Django's cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

from .. import ratelimit
from ..models import ApiKey


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


@dataclass(frozen=True)
class Caller:
    user: object | None
    api_key: ApiKey | None
    ident: str  # what the rate limit counts against


def identify(request: HttpRequest) -> Caller:
    """The caller of ``request``, or ApiError 401/403. Blocking (database)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credential = header.partition(" ")
        key = ApiKey.authenticate(credential.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            raise ApiError(401, "invalid_api_key", "The API key is not valid (unknown or revoked).")
        return Caller(user=key.user, api_key=key, ident=f"key:{key.pk}")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if request.method == "POST":
            rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
            if rejected is not None:
                raise ApiError(403, "csrf_failed", "Session-authenticated POSTs need a CSRF token.")
        return Caller(user=user, api_key=None, ident=f"user:{user.pk}")
    if settings.VOICE_API_ALLOW_ANONYMOUS:
        return Caller(user=None, api_key=None, ident=f"addr:{request.META.get('REMOTE_ADDR', '')}")
    raise ApiError(401, "missing_credentials", "Send an API key: Authorization: Bearer <key>.")


def check_cost(caller: Caller, text: str) -> None:
    """Count ``text``'s characters against a one-minute window: what synthesis costs, not only how often it is
    asked; ApiError 429 past VOICE_API_CHARS_PER_MINUTE. Blocking."""
    limit = settings.VOICE_API_CHARS_PER_MINUTE
    if not ratelimit.allow(f"api-chars:{caller.ident}", limit, cost=len(text)):
        raise ApiError(429, "characters_rate_limited", f"More than {limit} characters to speak in a minute; slow down.")


def check_rate(caller: Caller) -> None:
    """Count one request against a one-minute window; ApiError 429 past the limit."""
    limit = settings.VOICE_API_RATE_LIMIT
    if not ratelimit.allow(f"api:{caller.ident}", limit):
        raise ApiError(429, "rate_limited", f"More than {limit} requests in a minute; slow down.")
