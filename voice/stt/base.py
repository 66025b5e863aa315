"""The interface every speech-to-text engine implements, like ``voice.tts.base`` for speech.

A transcriber turns one utterance (mono PCM16 at 16 kHz) into a ``Transcript``.
``transcribe`` fixes the algorithm (check the audio, settle the language) and
subclasses fill in ``recognize``. Transcribers are plain blocking code: run
them off the event loop, in a pool bounded to the cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from django.conf import settings

from .. import audio
from ..exceptions import (  # noqa: F401 - re-exported
    BadAudio,
    NoSpeech,
    STTError,
    TranscriberUnavailable,
    UnknownLanguage,
    UtteranceTooLong,
)

SAMPLE_RATE = 16000
# A language argument that asks the engine to find out for itself.
DETECT = "auto"


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """What was said. ``text`` is empty when nothing was heard."""

    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


class BaseTranscriber:
    """Subclasses set ``name`` and implement ``recognize``; ``prepare`` if they load a model."""

    name: str = ""

    def prepare(self) -> None:
        """Load the model now, so the first utterance does not wait for it."""

    def transcribe(self, pcm: bytes, sample_rate: int, language: str | None = None) -> Transcript:
        """The transcript of ``pcm`` (mono PCM16 little-endian at 16 kHz). Blocking.

        ``language`` is a code such as "en"; None means VOICE_STT_LANGUAGE and
        "auto" (or an empty setting) lets the engine detect it.
        """
        samples = samples_of(pcm, sample_rate)
        return self.recognize(samples, resolve_language(language))

    def recognize(self, samples: np.ndarray, language: str | None) -> Transcript:
        """Transcribe float32 samples in [-1, 1] at 16 kHz; ``language`` None means detect it."""
        raise NotImplementedError


def samples_of(pcm: bytes, sample_rate: int) -> np.ndarray:
    """Float32 samples of mono PCM16 at 16 kHz, or BadAudio."""
    if sample_rate != SAMPLE_RATE:
        raise BadAudio(
            f"Audio at {sample_rate} Hz: transcribers take {SAMPLE_RATE} Hz mono PCM16 "
            "(voice.audio.resample converts it)."
        )
    try:
        data = audio.to_pcm16(pcm)
    except audio.AudioFormatError as exc:
        raise BadAudio(str(exc)) from exc
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768


def resolve_language(language: str | None) -> str | None:
    """The language code to transcribe in, or None to detect it."""
    if language is None:
        language = getattr(settings, "VOICE_STT_LANGUAGE", "en")
    language = language.strip().lower()
    return None if language in ("", DETECT) else language
