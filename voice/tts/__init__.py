"""Speech engines behind one small interface (see ``base.BaseEngine``).

``get_engine()`` returns the configured engine (VOICE_TTS_ENGINE): a short
name from ``ENGINES`` or the dotted path of a ``BaseEngine`` subclass. One
instance per process, so loaded models are shared.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import BaseEngine, EngineUnavailable, TTSError, UnknownVoice, Voice

__all__ = ["ENGINES", "BaseEngine", "EngineUnavailable", "TTSError", "UnknownVoice", "Voice", "get_engine", "warm_up"]

ENGINES = {
    "piper": "voice.tts.piper.PiperEngine",
    "gtts": "voice.tts.gtts.GTTSEngine",
}

logger = logging.getLogger(__name__)

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
            _instances[name] = engine_class()
        return _instances[name]


def warm_up() -> threading.Thread:
    """Load the configured engine and voice in the background, so the first reply does not wait."""

    def load() -> None:
        try:
            voice = get_engine().prepare()
            logger.info("Speech engine %s ready with voice %s", settings.VOICE_TTS_ENGINE, voice.id)
        except Exception:
            # The server still runs; replies report the problem as audio_failed.
            logger.exception("Speech engine %s failed to load", settings.VOICE_TTS_ENGINE)

    thread = threading.Thread(target=load, name="voice-tts-warm-up", daemon=True)
    thread.start()
    return thread
