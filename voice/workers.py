"""The speech worker: ``manage.py runworker voice-tts``.

Takes reply jobs from the ``voice-tts`` channel (see ``voice.dispatch``),
claims each, acknowledges it, and produces it with the same ``Reply`` the
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
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .models import Message
from .replies import Reply

logger = logging.getLogger(__name__)


class SpeechWorker(AsyncConsumer):
    """runworker runs one instance per channel per process: this state is per process."""

    slots: asyncio.Semaphore | None = None
    cancel_channel: str | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.replies: dict[int, Reply] = {}
        self.tasks: set[asyncio.Task] = set()

    async def tts_reply(self, job: dict) -> None:
        if time.time() > job["deadline"]:
            logger.warning("Dropping reply %s: it waited past its deadline", job["message_id"])
            return
        if self.slots is None:
            self.slots = asyncio.Semaphore(settings.VOICE_WORKER_CONCURRENCY)
            await self._listen_for_cancels()
        # Full: stop taking jobs, so that idle workers get them.
        await self.slots.acquire()
        message = Message(pk=job["message_id"])
        producer = producer_name("worker")
        try:
            await aclose_old_connections()
            if not await database_sync_to_async(message.claim)(producer):
                self.slots.release()
                return  # another process produces it
            reply = await self._reply_for(job)
            await retrying(
                self.channel_layer.send,
                job["reply_to"],
                {"type": "tts.accepted", "message_id": message.pk, "cancel_channel": self.cancel_channel},
            )
        except Exception:
            # Unacknowledged: let the server that asked produce it instead.
            logger.exception("Could not take reply %s", message.pk)
            await database_sync_to_async(message.release)(producer)
            self.slots.release()
            return
        self.replies[message.pk] = reply
        task = asyncio.create_task(self._produce(reply))
        self.tasks.add(task)  # the event loop holds tasks only weakly
        task.add_done_callback(self.tasks.discard)

    @database_sync_to_async
    def _reply_for(self, job: dict) -> Reply:
        message = Message.objects.select_related("conversation").get(pk=job["message_id"])
        earlier = message.conversation.messages.filter(pk__lt=message.pk)
        query = earlier.filter(role=Message.Role.USER).last()
        group = job["group"]
        return Reply(
            message=message,
            query=query.text if query else "",
            history=list(earlier.exclude(pk=query.pk if query else None)),
            voice=job["voice"],
            speed=job["speed"],
            origin=job["origin"],
            publish=lambda event: self.channel_layer.group_send(group, event),
            received_at=time.monotonic() - max(0.0, time.time() - job["received_wall"]),
        )

    async def _produce(self, reply: Reply) -> None:
        try:
            await reply.run()
        except Exception:
            logger.exception("Reply %s failed in the worker", reply.message.pk)
        finally:
            self.replies.pop(reply.message.pk, None)
            self.slots.release()

    async def _listen_for_cancels(self) -> None:
        """One listener for the whole process, never cancelled mid-receive.

        channels_redis loses a message popped for another channel of this
        process if a receive() is cancelled while it waits: so no per-reply
        listeners that come and go.
        """
        self.cancel_channel = await self.channel_layer.new_channel()

        async def listen() -> None:
            while True:
                try:
                    event = await self.channel_layer.receive(self.cancel_channel)
                except CHANNEL_LAYER_ERRORS as exc:
                    logger.warning("Cancel listener: channel layer unavailable (%s)", exc)
                    await asyncio.sleep(1)
                    continue
                reply = self.replies.get(event.get("message_id"))
                if reply is not None:
                    reply.cancel()

        task = asyncio.create_task(listen())
        self.tasks.add(task)
