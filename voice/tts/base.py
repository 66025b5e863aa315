"""The interface every speech engine implements, in the spirit of Django's email backends.

An engine lists its voices and turns text into a stream of chunks. Engines are
plain blocking code: ``voice.tts.service`` runs them in supervised processes
(or bounded threads), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from django.conf import settings

from .. import audio
from ..audio import AudioChunk
from ..exceptions import BadSpeed, EngineUnavailable, TTSError, UnknownVoice  # noqa: F401 - re-exported

MIN_SPEED = 0.5
MAX_SPEED = 2.0


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str
    engine: str
    sample_rate: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class BaseEngine:
    """Subclasses set ``name`` and implement ``voices`` and ``generate``."""

    name: str = ""
    key: str = ""  # what get_engine() was asked for: a short name or a dotted path

    def voices(self) -> list[Voice]:
        raise NotImplementedError

    def default_voice(self) -> Voice:
        configured = getattr(settings, "VOICE_TTS_VOICE", "")
        voices = self.voices()
        if configured and any(v.id == configured for v in voices):
            return self.get_voice(configured)
        return voices[0]

    def get_voice(self, voice_id: str | None) -> Voice:
        if not voice_id:
            return self.default_voice()
        for voice in self.voices():
            if voice.id == voice_id:
                return voice
        raise UnknownVoice(f"Unknown {self.name} voice {voice_id!r}.", public_message=f"Unknown voice {voice_id!r}.")

    def prepare(self, voice: str | None = None) -> Voice:
        """Load what synthesis with ``voice`` needs, so the first reply does not wait for it."""
        return self.get_voice(voice)

    def generate(self, text: str, voice: Voice, speed: float) -> Iterable[AudioChunk]:
        """Yield chunks for ``text``, as soon as each exists. Blocking is fine here.

        Chunk data may be numpy float32/int16 arrays, PCM16 bytes, WAV or MP3
        bytes: ``synthesize`` normalises them.
        """
        raise NotImplementedError

    def synthesize(self, text: str, voice: str | None = None, speed: float = 1.0) -> Iterator[AudioChunk]:
        """Normalised chunks (``pcm_s16le`` or ``mp3`` bytes) for ``text``. Blocking."""
        chosen = self.get_voice(voice)
        speed = check_speed(speed)
        for chunk in self.generate(text, chosen, speed):
            yield audio.normalize(chunk)


def check_speed(speed: float) -> float:
    # bool is an int to Python, never a speed to a client.
    if isinstance(speed, bool) or not isinstance(speed, (int, float, str)):
        raise BadSpeed(MIN_SPEED, MAX_SPEED)
    try:
        speed = float(speed)
    except ValueError:
        raise BadSpeed(MIN_SPEED, MAX_SPEED) from None
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise BadSpeed(MIN_SPEED, MAX_SPEED)
    return speed
