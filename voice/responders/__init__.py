"""Responders write the assistant's reply (see ``base.BaseResponder``).

``get_responder()`` returns the configured one (VOICE_RESPONDER): a short name
from ``RESPONDERS`` or the dotted path of a ``BaseResponder`` subclass. One
instance per process, so a loaded model is shared.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import (
    BaseResponder,
    Reasoning,
    ResponderBadResponse,
    ResponderError,
    ResponderRateLimited,
    ResponderTimeout,
    ResponderUnavailable,
    Turn,
)

__all__ = [
    "RESPONDERS",
    "BaseResponder",
    "Reasoning",
    "ResponderBadResponse",
    "ResponderError",
    "ResponderRateLimited",
    "ResponderTimeout",
    "ResponderUnavailable",
    "Turn",
    "get_responder",
]

RESPONDERS = {
    "readaloud": "voice.responders.readaloud.ReadAloudResponder",
    "openai": "voice.responders.openai.OpenAIResponder",
    "local": "voice.responders.local.LocalResponder",
}

logger = logging.getLogger(__name__)

_instances: dict[str, BaseResponder] = {}
_lock = threading.Lock()


def get_responder(name: str | None = None) -> BaseResponder:
    name = name or settings.VOICE_RESPONDER
    with _lock:
        if name not in _instances:
            try:
                responder_class = import_string(RESPONDERS.get(name, name))
            except ImportError as exc:
                raise ResponderUnavailable(
                    f"Unknown responder {name!r}: use one of {', '.join(RESPONDERS)} or a dotted path. ({exc})"
                ) from exc
            _instances[name] = responder_class()
        return _instances[name]
