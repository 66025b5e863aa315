"""Speech-to-text engines behind one small interface (see ``base.BaseTranscriber``).

``get_transcriber()`` returns the configured engine (VOICE_STT_ENGINE): a short
name from ``TRANSCRIBERS`` or the dotted path of a ``BaseTranscriber``
subclass. One instance per process, so a loaded model is shared.
``session.Utterance`` collects live audio and transcribes it as it grows.
"""

from __future__ import annotations

from django.conf import settings

from ..plugins import Plugins
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

_transcribers = Plugins("speech-to-text engine", TRANSCRIBERS, BaseTranscriber, TranscriberUnavailable)
_instances = _transcribers.instances


def get_transcriber(name: str | None = None) -> BaseTranscriber:
    return _transcribers.get(name or settings.VOICE_STT_ENGINE)
