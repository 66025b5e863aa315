"""Responders write the assistant's reply (see ``base.BaseResponder``).

``get_responder()`` returns the configured one (VOICE_RESPONDER): a short name
from ``RESPONDERS`` or the dotted path of a ``BaseResponder`` subclass. One
instance per process, so a loaded model is shared.
"""

from __future__ import annotations

from django.conf import settings

from ..plugins import Plugins
from .base import (
    BaseResponder,
    Queued,
    Reasoning,
    ResponderBadResponse,
    ResponderBusy,
    ResponderError,
    ResponderRateLimited,
    ResponderTimeout,
    ResponderUnavailable,
    Turn,
    Usage,
)

__all__ = [
    "RESPONDERS",
    "BaseResponder",
    "Queued",
    "Reasoning",
    "ResponderBadResponse",
    "ResponderBusy",
    "ResponderError",
    "ResponderRateLimited",
    "ResponderTimeout",
    "ResponderUnavailable",
    "Turn",
    "Usage",
    "get_responder",
]

RESPONDERS = {
    "readaloud": "voice.responders.readaloud.ReadAloudResponder",
    "openai": "voice.responders.openai.OpenAIResponder",
    "local": "voice.responders.local.LocalResponder",
}

_responders = Plugins("responder", RESPONDERS, BaseResponder, ResponderUnavailable)
_instances = _responders.instances


def get_responder(name: str | None = None) -> BaseResponder:
    return _responders.get(name or settings.VOICE_RESPONDER)
