"""The reply worker: ``manage.py runworker voice-replies``.

Takes reply jobs from the ``voice-replies`` channel and produces each with the
same ``ChatReply`` the server uses inline, publishing straight to the
conversation's group. The hand-off itself is in ``voice.dispatch``.
"""

from __future__ import annotations

import asyncio
import logging

from channels.consumer import AsyncConsumer
from django.conf import settings

from . import dispatch
from .producers import producers
from .protocol import ReplyJob
from .replies import ChatReply

logger = logging.getLogger(__name__)


class ReplyWorker(AsyncConsumer):
    """runworker runs one instance per channel per process: this state is per process."""

    slots: asyncio.Semaphore | None = None

    async def reply_job(self, event: dict) -> None:
        if self.slots is None:
            self.slots = asyncio.Semaphore(settings.VOICE_WORKER_CONCURRENCY)
        # Full: stop taking jobs, so that idle workers get them.
        await self.slots.acquire()
        reply = await dispatch.take(ReplyJob.from_event(event), self.channel_layer)
        if reply is None:
            self.slots.release()
            return
        producers(self.channel_layer).hold(asyncio.create_task(self._produce(reply)))

    async def _produce(self, reply: ChatReply) -> None:
        try:
            await reply.run()
        except Exception:
            logger.exception("Reply %s failed in the worker", reply.message.pk)
        finally:
            self.slots.release()
