"""Where a reply is produced: in this server process, or by a speech worker.

Either way the same ``ChatReply`` runs and publishes to the conversation's
group, so clients see exactly the same events (VOICE_TTS_DISPATCH picks).

Worker delivery is at-most-once (a worker killed mid-job loses it), so:

1. the server sends one job per reply to the ``voice-tts`` channel;
2. a worker claims the reply row atomically, then acknowledges;
3. no acknowledgement within VOICE_TTS_WORKER_TIMEOUT: the server claims the
   reply itself and produces the text only (``audio_failed``, ``tts_timeout``);
4. once claimed, the reply's heartbeat shows that its producer is alive: a
   worker that dies is noticed by ``voice.recovery``, whoever is connected.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings

from .exceptions import TTSError
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .producers import producers
from .replies import ChatReply

WORKER_CHANNEL = "voice-tts"


def producer_name(kind: str) -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


async def claim_and_run(reply: ChatReply, kind: str) -> bool:
    """Produce ``reply`` in this process, unless another one claimed it first."""
    channel = await producers(reply.publisher.channel_layer).listen()
    if not await database_sync_to_async(reply.message.claim)(producer_name(kind), channel):
        return False
    await reply.run()
    return True


class WorkerDispatch:
    """Hand a reply to a ``runworker voice-tts`` process; produce its text here if none takes it."""

    def __init__(self, reply: ChatReply, reply_to: str) -> None:
        self.reply = reply
        self.reply_to = reply_to  # this server's channel, for the acknowledgement
        self._accepted = asyncio.Event()

    @property
    def message_id(self) -> int:
        return self.reply.message.pk

    def job(self) -> dict:
        now = time.time()
        return {
            "type": "tts.reply",
            "message_id": self.message_id,
            "voice": self.reply.voice,
            "speed": self.reply.speed,
            "origin": self.reply.publisher.origin,
            "group": self.reply.publisher.group,
            "reply_to": self.reply_to,
            # Lets the worker measure latency from when the query arrived here.
            "received_wall": now - (time.monotonic() - self.reply.recorder.received_at),
            # A worker that gets the job later than this leaves it alone.
            "deadline": now + settings.VOICE_TTS_WORKER_TIMEOUT,
        }

    async def run(self) -> None:
        layer = self.reply.publisher.channel_layer
        try:
            await retrying(layer.send, WORKER_CHANNEL, self.job())
        except CHANNEL_LAYER_ERRORS as exc:
            if isinstance(exc, ChannelFull):
                error = TTSError(
                    "The speech worker queue is full.",
                    code="tts_busy",
                    public_message="Every speech worker is busy; the reply comes as text.",
                )
            else:
                error = TTSError(f"The speech workers cannot be reached ({exc!r}).", code="tts_unavailable")
            await self._produce_here(error)
            return
        timeout = settings.VOICE_TTS_WORKER_TIMEOUT
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on Python 3.11
                await self._accepted.wait()
        except TimeoutError:
            error = TTSError(
                f"No speech worker accepted the reply within {timeout:g} s.",
                code="tts_timeout",
                public_message="No speech worker was free in time; the reply comes as text.",
            )
            # Unless a worker claimed it just now: then the worker produces it.
            await self._produce_here(error)

    async def _produce_here(self, error: TTSError) -> None:
        self.reply.speech_error = error
        await claim_and_run(self.reply, "server")

    def accepted(self, event: dict) -> None:
        if event.get("message_id") == self.message_id:
            self._accepted.set()


async def produce(reply: ChatReply, reply_to: str, pending: dict[int, WorkerDispatch]) -> None:
    """Produce a reply the configured way; ``pending`` lists the ones a worker may still acknowledge."""
    if settings.VOICE_TTS_DISPATCH != "worker":
        await claim_and_run(reply, "server")
        return
    dispatch = WorkerDispatch(reply, reply_to)
    pending[dispatch.message_id] = dispatch
    try:
        await dispatch.run()
    finally:
        pending.pop(dispatch.message_id, None)
