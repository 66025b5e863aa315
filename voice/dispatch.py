"""Where a reply is produced: in this server process, or by a speech worker.

Either way the same ``Reply`` runs and publishes to the conversation group, so
clients see exactly the same events (VOICE_TTS_DISPATCH picks the way).

Worker delivery is at-most-once (a worker killed mid-job loses it), so the
consumer that sent a job keeps an eye on it:

1. it sends one job per reply to the ``voice-tts`` channel;
2. a worker claims the reply row atomically, then acknowledges with the name of
   a channel on which it listens for ``cancel``;
3. no acknowledgement within VOICE_TTS_WORKER_TIMEOUT: the consumer claims the
   reply itself and produces the text only (``audio_failed``, ``tts_timeout``);
4. once accepted, the consumer watches the reply's group events; silence for
   VOICE_TTS_STALL_TIMEOUT means the worker died: the text seen so far is
   stored as ``audio_failed`` (``tts_stalled``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings

from .layers import CHANNEL_LAYER_ERRORS, retrying
from .replies import Reply
from .tts import TTSError

WORKER_CHANNEL = "voice-tts"


def producer_name(kind: str) -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


class InlineReply:
    """Produce the reply right here."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    async def run(self) -> None:
        await database_sync_to_async(self.reply.message.claim)(producer_name("server"))
        await self.reply.run()

    async def cancel(self, task: asyncio.Task) -> None:
        self.reply.cancel()
        await task  # quick: the reply stores what it has and ends

    async def detach(self, task: asyncio.Task) -> None:
        """The asking socket closed: finish anyway, for the other tabs and the history."""
        await asyncio.shield(task)

    async def accepted(self, event: dict) -> None:
        pass

    def observe(self, event: dict) -> None:
        pass


class WorkerReply:
    """Hand the reply to a ``runworker voice-tts`` process and watch over it."""

    def __init__(self, reply: Reply, channel_layer, reply_to: str, group: str) -> None:
        self.reply = reply
        self.channel_layer = channel_layer
        self.reply_to = reply_to
        self.group = group
        self.local = False  # True once we produce it ourselves
        self.cancel_channel: str | None = None
        self.cancel_requested = False
        self.text_seen = ""
        self._accepted = asyncio.Event()
        self._progress = asyncio.Event()
        self._done = False

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
            "origin": self.reply.origin,
            "group": self.group,
            "reply_to": self.reply_to,
            # Lets the worker measure latency from when the query arrived here.
            "received_wall": now - (time.monotonic() - self.reply.received_at),
            # A worker that gets the job later than this leaves it alone.
            "deadline": now + settings.VOICE_TTS_WORKER_TIMEOUT,
        }

    async def run(self) -> None:
        try:
            await retrying(self.channel_layer.send, WORKER_CHANNEL, self.job())
        except CHANNEL_LAYER_ERRORS as exc:
            busy = isinstance(exc, ChannelFull)
            await self._produce_here(
                TTSError("Every speech worker is busy.", code="tts_busy")
                if busy
                else TTSError(f"The speech workers cannot be reached ({exc}).", code="tts_unavailable")
            )
            return
        timeout = settings.VOICE_TTS_WORKER_TIMEOUT
        try:
            await asyncio.wait_for(self._accepted.wait(), timeout)
        except TimeoutError:
            error = TTSError(f"No speech worker accepted the reply within {timeout:g} s.", code="tts_timeout")
            if await self._produce_here(error):
                return
            # A worker claimed it just now; its acknowledgement is on the way.
        await self._watch()

    async def _produce_here(self, error: TTSError) -> bool:
        """Produce the text here, without speech; False if a worker already claimed the reply."""
        if not await database_sync_to_async(self.reply.message.claim)(producer_name("server")):
            return False
        self.local = True
        self.reply.speech_error = error
        await self.reply.run()
        return True

    async def _watch(self) -> None:
        stall = settings.VOICE_TTS_STALL_TIMEOUT
        while not self._done:
            try:
                await asyncio.wait_for(self._progress.wait(), stall)
            except TimeoutError:
                await self.reply.abandon(
                    self.text_seen,
                    TTSError(f"The speech worker went silent for {stall:g} s.", code="tts_stalled"),
                )
                return
            self._progress.clear()

    async def accepted(self, event: dict) -> None:
        if event.get("message_id") != self.message_id:
            return
        self.cancel_channel = event["cancel_channel"]
        self._accepted.set()
        self._progress.set()
        if self.cancel_requested:
            await self._send_cancel()

    def observe(self, event: dict) -> None:
        """A group event this consumer received: progress (or the end) of the watched reply?"""
        if message_id_of(event) != self.message_id:
            return
        if event["type"] == "reply.delta":
            self.text_seen += event["text"]
        if event["type"] == "reply.done":
            self._done = True
        self._progress.set()

    async def cancel(self, task: asyncio.Task) -> None:
        # Never wait for the task here: it ends on the worker's reply.done,
        # which this consumer can only receive once this handler returns.
        if self.local:
            self.reply.cancel()
        elif self.cancel_channel:
            await self._send_cancel()
        else:
            self.cancel_requested = True

    async def _send_cancel(self) -> None:
        await retrying(
            self.channel_layer.send, self.cancel_channel, {"type": "tts.cancel", "message_id": self.message_id}
        )

    async def detach(self, task: asyncio.Task) -> None:
        """The asking socket closed. A worker's reply goes on without us; our own is finished."""
        if self.local:
            await asyncio.shield(task)
        else:
            task.cancel()


def message_id_of(event: dict) -> int | None:
    if event["type"] == "message":
        return event["message"]["id"]
    if event["type"] == "audio.chunk":
        return event["header"]["message_id"]
    return event.get("message_id")


def start(reply: Reply, channel_layer, reply_to: str, group: str) -> InlineReply | WorkerReply:
    if settings.VOICE_TTS_DISPATCH == "worker":
        return WorkerReply(reply, channel_layer, reply_to, group)
    return InlineReply(reply)
