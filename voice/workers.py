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
from .models import Message
from .replies import Reply

logger = logging.getLogger(__name__)


class SpeechWorker(AsyncConsumer):
    # runworker runs one instance per channel per process: these are per process.
    _slots: asyncio.Semaphore | None = None
    _running: set[asyncio.Task]

    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(settings.VOICE_WORKER_CONCURRENCY)
            self._running = set()
        return self._slots

    async def tts_reply(self, job: dict) -> None:
        if time.time() > job["deadline"]:
            logger.warning("Dropping reply %s: it waited past its deadline", job["message_id"])
            return
        # Full: stop taking jobs, so that idle workers get them.
        await self.slots().acquire()
        try:
            await aclose_old_connections()
            producer = producer_name("worker")
            if not await database_sync_to_async(Message(pk=job["message_id"]).claim)(producer):
                self.slots().release()
                return  # someone else produces it
            cancel_channel = await self.channel_layer.new_channel()
            reply = await self._reply_for(job)
            await self.channel_layer.send(
                job["reply_to"],
                {"type": "tts.accepted", "message_id": job["message_id"], "cancel_channel": cancel_channel},
            )
        except Exception:
            self.slots().release()
            raise
        task = asyncio.create_task(self._produce(reply, cancel_channel))
        # Keep a reference: the event loop holds tasks only weakly.
        self._running.add(task)
        task.add_done_callback(self._running.discard)

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

    async def _produce(self, reply: Reply, cancel_channel: str) -> None:
        async def cancel_on_request() -> None:
            await self.channel_layer.receive(cancel_channel)
            reply.cancel()

        watcher = asyncio.create_task(cancel_on_request())
        try:
            await reply.run()
        except Exception:
            logger.exception("Reply %s failed in the worker", reply.message.pk)
        finally:
            watcher.cancel()
            self.slots().release()
