"""Producing one assistant reply, from its stored query to its stored audio.

``ChatReply`` runs the reply pipeline for a placeholder reply that
``voice.turns`` stored, hands every event to the conversation's tabs
(``voice.publishing``) and to the database (``voice.recorder``), and ends with
the reply stored whatever happened: a failing engine costs the audio, a
failing model keeps the text so far, and a stopped reply keeps what was said
and how much of it was heard. It runs wherever ``voice.dispatch`` puts it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async

from . import pipeline
from .drafts import Draft
from .exceptions import ResponderError, TTSError
from .history import settled_turns_before
from .models import Message
from .producers import producers
from .publishing import GroupPublisher
from .recorder import ReplyRecorder
from .responders import get_responder

logger = logging.getLogger(__name__)


class ChatReply:
    def __init__(
        self,
        message: Message,
        publisher: GroupPublisher,
        *,
        voice: str | None = None,
        speed: float = 1.0,
        received_at: float | None = None,
        queued: bool = False,
        draft: Draft | None = None,
    ) -> None:
        """``message`` is the placeholder, with its ``reply_to`` (the query) loaded.

        ``queued``: the reply waited in a queue (for a worker), so a newer query may have come meanwhile.
        ``draft``: the reply begun before its query was stored (``voice.drafts``), taken for this one.
        """
        self.message = message
        self.publisher = publisher
        self.voice = voice
        self.speed = speed
        self.speech_error: TTSError | None = None  # set: produce the text only, reporting this
        self.queued = queued
        self.draft = draft
        self.recorder = ReplyRecorder(message, received_at if received_at is not None else time.monotonic())
        self.task: asyncio.Task | None = None
        self._producing: asyncio.Task | None = None
        self._stopped: str | None = None
        self._heard_ms: int | None = None

    async def run(self, *, speech_error: TTSError | None = None) -> Message:
        """Produce, publish and store the reply; returns the stored message.

        ``speech_error``: speech cannot be had (no reply worker took the
        reply, say); the text is produced alone and the error reported.
        """
        self.speech_error = speech_error
        self.task = asyncio.current_task()
        registry = producers(self.publisher.channel_layer)
        registry.add(self)
        checkpoints = asyncio.create_task(self.recorder.keep_checkpoints())
        self._producing = asyncio.create_task(self._produce())
        try:
            await asyncio.shield(self._producing)
        except asyncio.CancelledError:
            # Torn down from outside (shutdown): stop, and still store what there is.
            self.stop(Message.Status.INTERRUPTED)
        finally:
            try:
                await asyncio.shield(self._conclude(checkpoints))
            finally:
                registry.discard(self)
        return self.message

    def stop(self, status: str = Message.Status.CANCELLED, heard_ms: int | None = None) -> None:
        """Stop at once; what was produced is stored with ``status`` (cancelled or interrupted)."""
        if self._stopped is None:
            self._stopped = status
        if heard_ms is not None:
            self._heard_ms = heard_ms
        if self._producing is not None:
            self._producing.cancel()

    async def _produce(self) -> None:
        if self._stopped is not None:
            return  # stopped before it started: stored as it is, empty
        if self.draft is not None:
            async for event in self.draft.events():
                await self._handle(event)
            return
        query = self.message.reply_to
        if self.queued and await self._superseded(query):
            self._stopped = Message.Status.INTERRUPTED
            return
        speaker = pipeline.Speaker(voice=self.voice, speed=self.speed)
        if self.speech_error is not None:
            await self._handle(pipeline.SpeechFailed(self.speech_error))
            speaker = None
        try:
            responder = get_responder()
        except ResponderError as exc:
            await self._handle(pipeline.TextFailed(exc))
            return
        history = await settled_turns_before(query, responder.history_chars()) if responder.uses_history else []
        async for event in pipeline.ReplyPipeline(responder, speaker).run(query.text, history):
            await self._handle(event)

    async def _handle(self, event: pipeline.Event) -> None:
        self.recorder.observe(event)
        if isinstance(event, pipeline.TextFailed | pipeline.SpeechFailed):
            logger.warning("Reply %s: %s (%s)", self.message.pk, event.error.code, event.error)
        await self.publisher.publish(self.message.pk, event)

    @database_sync_to_async
    def _superseded(self, query: Message) -> bool:
        """Whether a newer query came while this reply waited (for a worker, say): it would answer too late."""
        return query.conversation.messages.filter(role=Message.Role.USER, pk__gt=query.pk).exists()

    async def _conclude(self, checkpoints: asyncio.Task) -> None:
        if self._producing is not None and not self._producing.done():
            await asyncio.wait([self._producing])
        checkpoints.cancel()
        if self.draft is not None:
            self.draft.cancel()  # stopped, or never started: the draft's pipeline ends with the reply
        if self._producing is not None and not self._producing.cancelled() and self._producing.exception():
            error = self._producing.exception()
            logger.error("Reply %s failed unexpectedly", self.message.pk, exc_info=error)
            await self._handle(pipeline.TextFailed(ResponderError(f"{type(error).__name__}: {error}")))
        message = await self.recorder.finish(self._stopped, self._heard_ms)
        await self.publisher.finished(message, self.recorder.chunks, self.recorder.metrics())
