"""Open chat sockets follow their session: logging out, or a new password, closes them.

A chat socket is authenticated once, at its handshake, and would otherwise
outlive the session it rode on. Every chat socket also joins its user's group
(``user_group``); the handlers here tell that group when a session ends or may
have become invalid, and ``voice.consumers.ChatConsumer`` closes the sockets
concerned with 4401. Connected in ``VoiceConfig.ready``.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import import_module

from asgiref.sync import async_to_sync
from channels.auth import get_user
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save
from django.http import HttpRequest

from .layers import CHANNEL_LAYER_ERRORS
from .protocol import Event, SessionCheck, SessionEnded

logger = logging.getLogger(__name__)

# Saving only these fields cannot change whether a session still logs in.
HARMLESS_FIELDS = frozenset({"last_login"})


def user_group(user_pk: object) -> str:
    return f"user.{user_pk}"


def session_fingerprint(session_key: str | None) -> str:
    """Names a session in channel-layer messages without putting the key itself (a credential) there."""
    return hashlib.sha256((session_key or "").encode()).hexdigest()


async def session_user_pk(session_key: str | None) -> object | None:
    """The pk of the user ``session_key`` logs in now, or None (ended, expired, or password changed since)."""
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # Channels' own check, the one the handshake passed: backend, active user, session auth hash.
    user = await get_user({"session": store})
    return user.pk if user.is_authenticated else None


def notify(user_pk: object, message: Event) -> None:
    """Tell every chat socket of a user; a failing channel layer must not fail the logout or the save."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_pk), message.to_event())
    except CHANNEL_LAYER_ERRORS:
        logger.exception("Could not reach the chat sockets of user %s to close them", user_pk)


def on_logged_out(sender: type, request: HttpRequest | None = None, user: object = None, **kwargs: object) -> None:
    # Sent before the session is flushed, so its key is still there to name.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        notify(user.pk, SessionEnded(session_fingerprint(session_key)))


def on_user_saved(sender: type, instance: object, created: bool = False, update_fields=None, **kwargs: object) -> None:
    if created or (update_fields is not None and set(update_fields) <= HARMLESS_FIELDS):
        return
    # A changed password rotates the session auth hash; a deactivated user logs
    # in nowhere. After the commit, so that the sockets' checks see the new row.
    user_pk = instance.pk
    transaction.on_commit(lambda: notify(user_pk, SessionCheck()))


def connect() -> None:
    user_logged_out.connect(on_logged_out, dispatch_uid="voice.close_sockets_on_logout")
    post_save.connect(on_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="voice.close_sockets_on_user_save")
