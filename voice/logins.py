"""Failed logins counted per address, across usernames.

django-axes counts failures per username and address together, so an
attacker locks out only their own guesses, never the real user logging in
from elsewhere. Guessing with a new username every time would then never be
locked, and each attempt still costs a password hash: ``AddressLockout``
refuses every login from an address once its failures, whatever the
usernames, reach ``VOICE_LOGIN_ADDRESS_FAILURE_LIMIT`` within the cool-off.
The failures are axes' own records (``AccessAttempt``), in the database that
every server process shares.
"""

from __future__ import annotations

from axes.helpers import get_client_ip_address, get_credentials
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone


def failures_from(address: str) -> int:
    """Failed logins from ``address`` within the cool-off, every username counted. Blocking (database)."""
    attempts = AccessAttempt.objects.filter(ip_address=address)
    if settings.AXES_COOLOFF_TIME:
        attempts = attempts.filter(attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME)
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class AddressLockout:
    """An authentication backend, before any that checks a password: it only refuses, never logs in.

    It has no ``get_user``, as axes' has none: a session is never tied to it (``force_login`` and
    ``login`` pick the first backend that has one).
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, **kwargs) -> None:
        if request is None:
            return None
        address = get_client_ip_address(request)
        if address and failures_from(address) >= settings.VOICE_LOGIN_ADDRESS_FAILURE_LIMIT:
            # axes' middleware answers with its lockout page (429 and the cool-off sentence).
            request.axes_locked_out = True
            request.axes_credentials = get_credentials(username)
            raise PermissionDenied("Too many failed logins from this address.")
        return None
