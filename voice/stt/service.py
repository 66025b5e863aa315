"""Transcription for the event loop: the supervised pool (``voice.pool``) behind one call.

``transcription().transcribe(pcm)`` runs one transcription in a model process
(VOICE_STT_PROCESSES of them, each holding its model; 0: threads of this
process) and returns its ``Transcript``. A transcription that runs past its
time limit gets its process replaced; none can hang a socket or the server.
The service is built from the settings on first use and rebuilt when they
change (tests).
"""

from __future__ import annotations

import asyncio
import time

from django.conf import settings

from ..exceptions import TranscriberBusy
from ..plugins import ProcessService
from ..pool import SlotPool
from ..scheduling import DEADLINE, Job
from .base import SAMPLE_RATE, Transcript


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
            warm=[("transcribe", self.engine)],
            name="voice-stt",
        )

    def start(self) -> Transcription:
        self.pool.start()
        return self

    def close(self) -> None:
        self.pool.close()

    async def transcribe(self, pcm: bytes, language: str | None = None) -> Transcript:
        """What was said in ``pcm`` (mono PCM16 at 16 kHz); STTError if it could not be heard.

        TranscriberBusy at once when VOICE_STT_QUEUE_LIMIT transcriptions wait
        already: a flood from a few sockets must not stall voice input for all.
        """
        if len(self.pool.queue) >= settings.VOICE_STT_QUEUE_LIMIT:
            raise TranscriberBusy(f"{len(self.pool.queue)} transcriptions are waiting.")
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future = loop.create_future()

        def deliver(item: tuple) -> None:
            def settle() -> None:
                if outcome.done():
                    return
                if item[0] == "result":
                    outcome.set_result(item[1])
                elif item[0] == "error":
                    outcome.set_exception(item[1])

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass  # the loop is gone: nobody is listening

        job = Job(
            task=("transcribe", self.engine, pcm, language),
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
