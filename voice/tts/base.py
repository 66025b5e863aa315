"""The interface every speech engine implements, in the spirit of Django's email backends.

An engine lists its voices and turns text into a stream of chunks. Engines are
plain blocking code; ``BaseEngine.astream`` runs them off the event loop in a
pool bounded to the cores (ONNX Runtime and friends use several threads per
call: unbounded concurrency only thrashes).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from django.conf import settings

from .. import audio
from ..audio import AudioChunk

MIN_SPEED = 0.5
MAX_SPEED = 2.0


class TTSError(Exception):
    """Synthesis failed. ``code`` is stable and safe to show to clients."""

    code = "tts_failed"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class UnknownVoice(TTSError):
    code = "unknown_voice"


class EngineUnavailable(TTSError):
    code = "tts_unavailable"


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
        raise UnknownVoice(f"Unknown {self.name} voice {voice_id!r}.")

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

    async def astream(self, text: str, voice: str | None = None, speed: float = 1.0) -> AsyncIterator[AudioChunk]:
        """``synthesize`` without blocking the event loop.

        Each chunk is produced in the shared pool and handed over the moment it
        exists. Closing the iterator early (cancel) abandons the generator; its
        in-flight step finishes in the pool and is discarded.
        """
        chunks = self.synthesize(text, voice, speed)
        finished = object()
        step = None
        try:
            while True:
                step = executor().submit(next, chunks, finished)
                chunk = await asyncio.wrap_future(step)
                if chunk is finished:
                    return
                yield chunk
        finally:
            # Closing a generator that a pool thread is still running raises:
            # close it when that thread's step is over.
            if step is None or step.done():
                chunks.close()
            else:
                step.add_done_callback(lambda _step: chunks.close())


def check_speed(speed: float) -> float:
    try:
        speed = float(speed)
    except (TypeError, ValueError):
        raise TTSError("Speed must be a number.", code="bad_speed") from None
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise TTSError(f"Speed must be between {MIN_SPEED} and {MAX_SPEED}.", code="bad_speed")
    return speed


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process-wide synthesis pool, sized by VOICE_TTS_THREADS."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=max(1, settings.VOICE_TTS_THREADS), thread_name_prefix="voice-tts"
            )
        return _executor
