"""Synthesis for the event loop: cache, deadline queue and supervised pool behind one call.

``synthesis().stream(...)`` yields a segment's audio chunks. A segment said
before comes from the cache at once; any other becomes a job in the pool's
queue, due when the listener needs it, and comes back chunk by chunk. The
chat, the workers and the speech API all speak through here; the service is
built from the settings on first use and rebuilt when they change (tests).
The pool knows no engine: the work it runs for speech and what a failed job
becomes (``FAILURES``) are defined here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

from django.conf import settings

from .. import metrics
from ..audio import AudioChunk
from ..plugins import ProcessService
from ..pool import Done, Failed, Failures, Message, Output, SlotPool, Work
from ..scheduling import Job, process_cores
from . import cache as segment_cache
from . import get_engine
from .base import BaseEngine, TTSError

logger = logging.getLogger(__name__)

WARM_TEXT = "Hello."

FAILURES = Failures(
    TTSError, timeout_code="tts_timeout", timeout_message="Speech took too long; the reply continues as text."
)


# --- The work, done in a slot of the pool (a model process, or a thread) ---------------------------
def synthesize_in_slot(engine: str, voice: str, speed: float, text: str) -> Iterator[AudioChunk]:
    """``text`` said by ``engine`` (its ``key``), chunk by chunk."""
    return get_engine(engine).synthesize(text, voice, speed)


def warm_up(engine: str, voice: str | None, speak: bool) -> None:
    """Load the engine and its voice; with ``speak``, say a phrase once too (the first real job is then as fast)."""
    loaded = get_engine(engine)
    voice = loaded.prepare(voice).id
    if speak:
        for _chunk in loaded.synthesize(WARM_TEXT, voice):
            pass


def time_limit(text: str) -> float:
    """How long one segment may take: scaled by its length, within a floor and a cap."""
    scaled = settings.VOICE_TTS_JOB_TIMEOUT + settings.VOICE_TTS_JOB_TIMEOUT_PER_CHAR * len(text)
    return min(scaled, settings.VOICE_TTS_JOB_TIMEOUT_MAX)


class Synthesis:
    def __init__(self) -> None:
        processes = settings.VOICE_TTS_PROCESSES
        self.pool = SlotPool(
            processes or settings.VOICE_TTS_THREADS,
            processes=processes > 0,
            policy=settings.VOICE_TTS_SCHEDULING,
            failures=FAILURES,
            # A model process says a phrase once too; a thread of this process only loads.
            warm=[Work.of(warm_up, settings.VOICE_TTS_ENGINE, settings.VOICE_TTS_VOICE or None, processes > 0)],
            on_event=metrics.pool_event,
            name="voice-tts",
            cores=process_cores(settings.VOICE_CPU_CORES),
        )
        self.cache = segment_cache.SegmentCache(
            max_bytes=settings.VOICE_TTS_CACHE_MB * 1024 * 1024,
            shared_alias="default" if settings.VOICE_TTS_CACHE_SHARED else None,
            shared_bytes=settings.VOICE_TTS_SHARED_CACHE_MB * 1024 * 1024,
        )
        self.hits = 0
        self.misses = 0
        self.saved_seconds = 0.0

    def start(self) -> Synthesis:
        self.pool.start()
        return self

    def close(self) -> None:
        self.pool.close()

    async def stream(
        self, engine: BaseEngine, voice: str, speed: float, text: str, due: float | None = None
    ) -> AsyncIterator[AudioChunk]:
        """The audio of one segment; ``due`` (time.monotonic()) is when the listener needs it (default: now)."""
        cache_key = segment_cache.key(engine.key, voice, speed, text)
        entry = await self.cache.get(cache_key) if self.cache.max_bytes or self.cache.shared_alias else None
        if entry is not None:
            self.hits += 1
            self.saved_seconds += entry.synthesis_seconds
            metrics.CACHE_HITS.inc()
            metrics.CACHE_SAVED.inc(entry.synthesis_seconds)
            for chunk in entry.chunks:
                yield chunk
            return
        self.misses += 1
        metrics.CACHE_MISSES.inc()
        loop = asyncio.get_running_loop()
        results: asyncio.Queue = asyncio.Queue()

        def deliver(message: Message) -> None:
            try:
                loop.call_soon_threadsafe(results.put_nowait, message)
            except RuntimeError:
                pass  # the loop is gone: nobody is listening

        job = Job(
            work=Work.of(synthesize_in_slot, engine.key, voice, speed, text),
            due=time.monotonic() if due is None else due,
            deliver=deliver,
            time_limit=time_limit(text),
        )
        self.pool.submit(job)
        metrics.QUEUE_DEPTH.set(len(self.pool.queue))
        chunks: list[AudioChunk] = []
        try:
            while True:
                match await results.get():
                    case Output(value=chunk):
                        chunks.append(chunk)
                        yield chunk
                    case Done():
                        break
                    case Failed(error=error):
                        raise error
        finally:
            # An interrupted reply: a job that has not started is dropped; one running finishes unheard.
            job.cancel()
            metrics.QUEUE_DEPTH.set(len(self.pool.queue))
        if chunks:
            seconds = time.monotonic() - (job.started_at or job.submitted_at)
            await self.cache.put(cache_key, segment_cache.Entry(tuple(chunks), seconds))


# The process's synthesis service, started on first use.
synthesis = ProcessService(
    Synthesis, settings_prefixes=("VOICE_TTS", "VOICE_PIPER_THREADS", "VOICE_CPU_CORES", "CACHES")
)
