"""Speech-to-text engines behind one small interface (see ``base.BaseTranscriber``).

``get_transcriber()`` returns the configured engine (VOICE_STT_ENGINE): a short
name from ``TRANSCRIBERS`` or the dotted path of a ``BaseTranscriber``
subclass. One instance per process, so a loaded model is shared.
``session.Utterance`` collects live audio and transcribes it as it grows.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import (
    DETECT,
    SAMPLE_RATE,
    BadAudio,
    BaseTranscriber,
    NoSpeech,
    Segment,
    STTError,
    TranscriberUnavailable,
    Transcript,
    UnknownLanguage,
    UtteranceTooLong,
)

__all__ = [
    "DETECT",
    "SAMPLE_RATE",
    "TRANSCRIBERS",
    "BadAudio",
    "BaseTranscriber",
    "NoSpeech",
    "STTError",
    "Segment",
    "TranscriberUnavailable",
    "Transcript",
    "UnknownLanguage",
    "UtteranceTooLong",
    "get_transcriber",
]

TRANSCRIBERS = {
    "whisper": "voice.stt.whisper.WhisperTranscriber",
}

_instances: dict[str, BaseTranscriber] = {}
_lock = threading.Lock()


def get_transcriber(name: str | None = None) -> BaseTranscriber:
    name = name or settings.VOICE_STT_ENGINE
    with _lock:
        if name not in _instances:
            path = TRANSCRIBERS.get(name, name)
            try:
                transcriber_class = import_string(path)
            except ImportError as exc:
                raise TranscriberUnavailable(
                    f"Unknown speech-to-text engine {name!r}: use one of {', '.join(TRANSCRIBERS)} or a dotted path."
                ) from exc
            if not (isinstance(transcriber_class, type) and issubclass(transcriber_class, BaseTranscriber)):
                raise TranscriberUnavailable(f"{path} is not a BaseTranscriber subclass.")
            _instances[name] = transcriber_class()
        return _instances[name]
