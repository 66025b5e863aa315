"""Speech engines behind one small interface (see ``base.BaseEngine``).

``get_engine()`` returns the configured engine (VOICE_TTS_ENGINE): a short
name from ``ENGINES`` or the dotted path of a ``BaseEngine`` subclass. One
instance per process, so loaded models are shared.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import BaseEngine, EngineUnavailable, TTSError, UnknownVoice, Voice

__all__ = ["ENGINES", "BaseEngine", "EngineUnavailable", "TTSError", "UnknownVoice", "Voice", "get_engine"]

ENGINES = {
    "piper": "voice.tts.piper.PiperEngine",
    "gtts": "voice.tts.gtts.GTTSEngine",
}

_instances: dict[str, BaseEngine] = {}
_lock = threading.Lock()


def get_engine(name: str | None = None) -> BaseEngine:
    name = name or settings.VOICE_TTS_ENGINE
    with _lock:
        if name not in _instances:
            path = ENGINES.get(name, name)
            try:
                engine_class = import_string(path)
            except ImportError as exc:
                raise EngineUnavailable(
                    f"Unknown speech engine {name!r}: use one of {', '.join(ENGINES)} or a dotted path."
                ) from exc
            engine = engine_class()
            engine.key = name  # how a synthesis process finds the same engine
            _instances[name] = engine
        return _instances[name]
