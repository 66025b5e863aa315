"""The speech worker: ``manage.py runworker voice-tts``.

Takes reply jobs from the ``voice-tts`` channel (see ``voice.dispatch``),
claims each, acknowledges it, and produces it with the same ``ChatReply`` the
server uses inline, publishing straight to the conversation's group.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.consumer import AsyncConsumer
from channels.db import aclose_old_connections, database_sync_to_async
from django.conf import settings

from .dispatch import producer_name
from .layers import retrying
from .models import Message
from .producers import producers
from .publishing import GroupPublisher
from .replies import ChatReply

logger = logging.getLogger(__name__)


class SpeechWorker(AsyncConsumer):
    """runworker runs one instance per channel per process: this state is per process."""

    slots: asyncio.Semaphore | None = None

    async def tts_reply(self, job: dict) -> None:
        if time.time() > job["deadline"]:
            logger.warning("Dropping reply %s: it waited past its deadline", job["message_id"])
            return
        if self.slots is None:
            self.slots = asyncio.Semaphore(settings.VOICE_WORKER_CONCURRENCY)
        # Full: stop taking jobs, so that idle workers get them.
        await self.slots.acquire()
        message = Message(pk=job["message_id"])
        producer = producer_name("worker")
        registry = producers(self.channel_layer)
        try:
            await aclose_old_connections()
            channel = await registry.listen()
            if not await database_sync_to_async(message.claim)(producer, channel):
                self.slots.release()
                return  # another process produces it
            reply = await self._reply_for(job)
            await retrying(self.channel_layer.send, job["reply_to"], {"type": "tts.accepted", "message_id": message.pk})
        except Exception:
            # Unacknowledged: let the server that asked produce it instead.
            logger.exception("Could not take reply %s", message.pk)
            await database_sync_to_async(message.release)(producer)
            self.slots.release()
            return
        registry.hold(asyncio.create_task(self._produce(reply)))

    @database_sync_to_async
    def _reply_for(self, job: dict) -> ChatReply:
        message = Message.objects.select_related("reply_to__conversation").get(pk=job["message_id"])
        return ChatReply(
            message,
            GroupPublisher(self.channel_layer, job["group"], origin=job["origin"]),
            voice=job["voice"],
            speed=job["speed"],
            received_at=time.monotonic() - max(0.0, time.time() - job["received_wall"]),
            queued=True,
        )

    async def _produce(self, reply: ChatReply) -> None:
        try:
            await reply.run()
        except Exception:
            logger.exception("Reply %s failed in the worker", reply.message.pk)
        finally:
            self.slots.release()
