"""Where a reply is produced: in this server process, or by a reply worker.

Either way the same ``ChatReply`` runs and publishes to the conversation's
group, so clients see exactly the same events (VOICE_REPLY_DISPATCH picks).
This module holds both ends of the hand-off to a worker.

Worker delivery is at-most-once (a worker killed mid-job loses it), so:

1. the server sends one ``ReplyJob`` per reply to the ``voice-replies`` channel;
2. a worker claims the reply row atomically, then acknowledges
   (``ReplyAccepted``, to the server's channel);
3. no acknowledgement within VOICE_REPLY_WORKER_TIMEOUT: the server claims the
   reply itself and produces the text only (``audio_failed``, ``worker_timeout``);
4. once claimed, the reply's heartbeat shows that its producer is alive: a
   worker that dies is noticed by ``voice.recovery``, whoever is connected.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from channels.db import aclose_old_connections, database_sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings

from .exceptions import TTSError
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .models import Message
from .producers import producers
from .protocol import ReplyAccepted, ReplyJob
from .publishing import GroupPublisher
from .replies import ChatReply

logger = logging.getLogger(__name__)

WORKER_CHANNEL = "voice-replies"


def producer_name(kind: str) -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


async def claim_and_run(reply: ChatReply, kind: str, speech_error: TTSError | None = None) -> bool:
    """Produce ``reply`` in this process, unless another one claimed it first."""
    try:
        channel = await producers(reply.publisher.channel_layer).listen()
        if not await database_sync_to_async(reply.message.claim)(producer_name(kind), channel):
            return False
        await reply.run(speech_error=speech_error)
        return True
    finally:
        if reply.draft is not None:
            reply.draft.cancel()  # whatever happened, nothing of it runs on


async def produce(reply: ChatReply, reply_to: str, pending: dict[int, WorkerDispatch]) -> None:
    """Produce a reply the configured way; ``pending`` lists the ones a worker may still acknowledge."""
    if settings.VOICE_REPLY_DISPATCH != "worker":
        await claim_and_run(reply, "server")
        return
    dispatch = WorkerDispatch(reply, reply_to)
    pending[dispatch.message_id] = dispatch
    try:
        await dispatch.run()
    finally:
        pending.pop(dispatch.message_id, None)


# --- The server's end -------------------------------------------------------------
class WorkerDispatch:
    """Hand a reply to a ``runworker voice-replies`` process; produce its text here if none takes it."""

    def __init__(self, reply: ChatReply, reply_to: str) -> None:
        self.reply = reply
        self.reply_to = reply_to  # this server's channel, for the acknowledgement
        self._accepted = asyncio.Event()

    @property
    def message_id(self) -> int:
        return self.reply.message.pk

    def job(self) -> ReplyJob:
        now = time.time()
        return ReplyJob(
            message_id=self.message_id,
            voice=self.reply.voice,
            speed=self.reply.speed,
            origin=self.reply.publisher.origin,
            group=self.reply.publisher.group,
            reply_to=self.reply_to,
            received_wall=now - (time.monotonic() - self.reply.recorder.received_at),
            deadline=now + settings.VOICE_REPLY_WORKER_TIMEOUT,
        )

    async def run(self) -> None:
        layer = self.reply.publisher.channel_layer
        try:
            await retrying(layer.send, WORKER_CHANNEL, self.job().to_event())
        except CHANNEL_LAYER_ERRORS as exc:
            if isinstance(exc, ChannelFull):
                error = TTSError(
                    "The reply worker queue is full.",
                    code="workers_busy",
                    public_message="Every reply worker is busy; the reply comes as text.",
                )
            else:
                error = TTSError(
                    f"The reply workers cannot be reached ({exc!r}).",
                    code="workers_unavailable",
                    public_message="The reply workers cannot be reached; the reply comes as text.",
                )
            await claim_and_run(self.reply, "server", error)
            return
        timeout = settings.VOICE_REPLY_WORKER_TIMEOUT
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on Python 3.11
                await self._accepted.wait()
        except TimeoutError:
            error = TTSError(
                f"No reply worker accepted the reply within {timeout:g} s.",
                code="worker_timeout",
                public_message="No reply worker was free in time; the reply comes as text.",
            )
            # Unless a worker claimed it just now: then the worker produces it.
            await claim_and_run(self.reply, "server", error)

    def accepted(self) -> None:
        self._accepted.set()


# --- The worker's end -------------------------------------------------------------
async def take(job: ReplyJob, channel_layer) -> ChatReply | None:
    """Claim a job's reply and acknowledge it: the reply to produce here, or None.

    None when the job came too late, another process claimed the reply, or it
    could not be taken (then the server that sent it produces it instead).
    """
    if time.time() > job.deadline:
        logger.warning("Dropping reply %s: it waited past its deadline", job.message_id)
        return None
    message = Message(pk=job.message_id)
    producer = producer_name("worker")
    try:
        await aclose_old_connections()
        channel = await producers(channel_layer).listen()
        if not await database_sync_to_async(message.claim)(producer, channel):
            return None  # another process produces it
        reply = await _reply_for(job, channel_layer)
        await retrying(channel_layer.send, job.reply_to, ReplyAccepted(job.message_id).to_event())
    except Exception:
        # Unacknowledged: let the server that asked produce it instead.
        logger.exception("Could not take reply %s", job.message_id)
        await database_sync_to_async(message.release)(producer)
        return None
    return reply


@database_sync_to_async
def _reply_for(job: ReplyJob, channel_layer) -> ChatReply:
    message = Message.objects.select_related("reply_to__conversation").get(pk=job.message_id)
    return ChatReply(
        message,
        GroupPublisher(channel_layer, job.group, origin=job.origin),
        voice=job.voice,
        speed=job.speed,
        received_at=time.monotonic() - max(0.0, time.time() - job.received_wall),
        queued=True,
    )
