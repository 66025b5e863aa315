"""Transcription for the event loop: the supervised pool (``voice.pool``) behind one call.

``transcription().transcribe(pcm)`` runs one transcription in a model process
(VOICE_STT_PROCESSES of them, each holding its model; 0: threads of this
process) and returns its ``Transcript``. A transcription that runs past its
time limit gets its process replaced; none can hang a socket or the server.
The service is built from the settings on first use and rebuilt when they
change (tests). The pool knows no engine: the work it runs for listening and
what a failed job becomes (``FAILURES``) are defined here.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from django.conf import settings

from ..exceptions import TranscriberBusy
from ..plugins import ProcessService
from ..pool import Failed, Failures, Message, Output, SlotPool, Work
from ..scheduling import DEADLINE, Job
from . import get_transcriber
from .base import SAMPLE_RATE, STTError, Transcript

FAILURES = Failures(STTError, timeout_code="stt_timeout", timeout_message="Listening took too long; please try again.")


# --- The work, done in a slot of the pool (a model process, or a thread) ---------------------------
def transcribe_in_slot(engine: str, pcm: bytes, language: str | None) -> tuple[Transcript]:
    """What ``engine`` hears in ``pcm``: the one output of this work."""
    return (get_transcriber(engine).transcribe(pcm, SAMPLE_RATE, language),)


def warm_up(engine: str) -> None:
    """Load the engine's model."""
    get_transcriber(engine).prepare()


def time_limit(pcm: bytes) -> float:
    """How long one transcription may take: a floor, plus a second per second of audio, within a cap."""
    seconds = len(pcm) / (2 * SAMPLE_RATE)
    return min(settings.VOICE_STT_JOB_TIMEOUT + seconds, 2 * settings.VOICE_STT_JOB_TIMEOUT + 60)


class Transcription:
    def __init__(self) -> None:
        processes = settings.VOICE_STT_PROCESSES
        self.engine = settings.VOICE_STT_ENGINE
        self.pool = SlotPool(
            processes or 1,
            processes=processes > 0,
            policy=DEADLINE,
            failures=FAILURES,
            warm=[Work.of(warm_up, self.engine)],
            name="voice-stt",
        )
        self._held: Counter[str] = Counter()  # transcriptions queued or running, by account

    def start(self) -> Transcription:
        self.pool.start()
        return self

    def close(self) -> None:
        self.pool.close()

    @property
    def waiting(self) -> int:
        """Transcriptions waiting for a slot: optional work (partials) waits until there are none."""
        return len(self.pool.queue)

    async def transcribe(self, pcm: bytes, language: str | None = None, owner: str | None = None) -> Transcript:
        """What was said in ``pcm`` (mono PCM16 at 16 kHz); STTError if it could not be heard.

        TranscriberBusy at once when VOICE_STT_QUEUE_LIMIT transcriptions wait
        already: a flood from a few sockets must not stall voice input for all;
        and when ``owner`` (an account) has VOICE_STT_USER_JOBS of its own queued
        or running: one account's tabs must not fill the queue for everyone.
        """
        if self.waiting >= settings.VOICE_STT_QUEUE_LIMIT:
            raise TranscriberBusy(f"{self.waiting} transcriptions are waiting.")
        share = settings.VOICE_STT_USER_JOBS
        if owner is not None and share > 0 and self._held[owner] >= share:
            raise TranscriberBusy(
                f"{owner} has {share} transcriptions queued or running.",
                public_message="Your other tabs' speech is still being transcribed; try again in a moment.",
            )
        if owner is not None:
            self._held[owner] += 1
        try:
            return await self._transcribe(pcm, language)
        finally:
            if owner is not None:
                self._held[owner] -= 1
                if not self._held[owner]:
                    del self._held[owner]

    async def _transcribe(self, pcm: bytes, language: str | None) -> Transcript:
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future = loop.create_future()

        def deliver(message: Message) -> None:
            def settle() -> None:
                if outcome.done():
                    return
                if isinstance(message, Output):
                    outcome.set_result(message.value)
                elif isinstance(message, Failed):
                    outcome.set_exception(message.error)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass  # the loop is gone: nobody is listening

        job = Job(
            work=Work.of(transcribe_in_slot, self.engine, pcm, language),
            due=time.monotonic(),
            deliver=deliver,
            time_limit=time_limit(pcm),
        )
        self.pool.submit(job)
        try:
            return await outcome
        finally:
            job.cancel()  # not started yet: never start it


# The process's transcription service, started on first use.
transcription = ProcessService(Transcription, settings_prefixes=("VOICE_STT",))
