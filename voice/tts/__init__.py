"""Speech engines behind one small interface (see ``base.BaseEngine``).

``get_engine()`` returns the configured engine (VOICE_TTS_ENGINE): a short
name from ``ENGINES`` or the dotted path of a ``BaseEngine`` subclass. One
instance per process, so loaded models are shared.
"""

from __future__ import annotations

from django.conf import settings

from ..plugins import Plugins
from .base import BaseEngine, EngineUnavailable, TTSError, UnknownVoice, Voice

__all__ = ["ENGINES", "BaseEngine", "EngineUnavailable", "TTSError", "UnknownVoice", "Voice", "get_engine"]

ENGINES = {
    "piper": "voice.tts.piper.PiperEngine",
    "gtts": "voice.tts.gtts.GTTSEngine",
}

_engines = Plugins("speech engine", ENGINES, BaseEngine, EngineUnavailable)
_instances = _engines.instances


def get_engine(name: str | None = None) -> BaseEngine:
    name = name or settings.VOICE_TTS_ENGINE
    engine = _engines.get(name)
    engine.key = name  # how a synthesis process finds the same engine
    return engine
