"""One assistant reply of the chat, from its query to its stored audio.

``accept_query`` stores the user's message, and a placeholder reply linked to
it, before anything else can fail. ``ChatReply`` then runs the reply pipeline,
hands every event to the conversation's tabs (``voice.publishing``) and to the
database (``voice.recorder``), and ends with the reply stored whatever
happened: a failing engine costs the audio, a failing model keeps the text so
far, and a stopped reply keeps what was said and how much of it was heard.

``stop_replies`` and ``record_heard`` are how a new query (or a stop) cuts
short what came before it, on any server or worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from . import pipeline, protocol
from .exceptions import ResponderError, TTSError
from .history import settled_turns_before
from .models import Conversation, Message
from .producers import producers, send_stop
from .publishing import GroupPublisher
from .recorder import ReplyRecorder
from .responders import get_responder

logger = logging.getLogger(__name__)

# produced_by of a reply stopped before any process took it on.
NEVER_STARTED = "stopped-before-start"


@dataclass(frozen=True)
class Recording:
    """What the user said, for a spoken query."""

    wav: bytes
    duration_ms: int


@database_sync_to_async
def accept_query(
    conversation: Conversation, text: str, client_id: str = "", recording: Recording | None = None
) -> tuple[Message, Message | None]:
    """Store the query (with its recording, if it was spoken) and a placeholder reply that answers it.

    A query whose ``client_id`` is already stored (sent again after a dropped
    connection) is not stored twice: it comes back with no new reply. A
    recording that cannot be stored costs the recording only, never the query.
    """
    if client_id:
        stored = conversation.messages.filter(client_id=client_id, role=Message.Role.USER).first()
        if stored is not None:
            return stored, None
    try:
        query, reply = _store_query(conversation, text, client_id)
    except IntegrityError:  # the same client_id, stored a moment ago by another socket
        return conversation.messages.get(client_id=client_id, role=Message.Role.USER), None
    if recording is not None:
        try:
            query.audio_format, query.duration_ms = "wav", recording.duration_ms
            query.audio.save(f"{query.pk}-query.wav", ContentFile(recording.wav), save=False)
            query.save(update_fields=["audio", "audio_format", "duration_ms"])
        except Exception:
            logger.exception("Storing the recording of query %s failed; the query is kept", query.pk)
            query.audio, query.audio_format, query.duration_ms = None, "", None
    return query, reply


def _store_query(conversation: Conversation, text: str, client_id: str) -> tuple[Message, Message]:
    with transaction.atomic():
        # Another tab may have changed the voice or speed since this socket opened.
        conversation.refresh_from_db(fields=["voice", "speed", "title"])
        query = conversation.messages.create(role=Message.Role.USER, text=text, client_id=client_id)
        reply = conversation.messages.create(
            role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, reply_to=query
        )
        if not conversation.title:
            conversation.title = conversation.title_from(text)
        conversation.save(update_fields=["title", "updated_at"])
    return query, reply


class ChatReply:
    def __init__(
        self,
        message: Message,
        publisher: GroupPublisher,
        *,
        voice: str | None = None,
        speed: float = 1.0,
        received_at: float | None = None,
        speech_error: TTSError | None = None,
        queued: bool = False,
    ) -> None:
        """``message`` is the placeholder, with its ``reply_to`` (the query) loaded.

        ``queued``: the reply waited in a queue (for a worker), so a newer query may have come meanwhile.
        """
        self.message = message
        self.publisher = publisher
        self.voice = voice
        self.speed = speed
        self.speech_error = speech_error  # set: produce the text only, reporting this
        self.queued = queued
        self.recorder = ReplyRecorder(message, received_at if received_at is not None else time.monotonic())
        self.task: asyncio.Task | None = None
        self._producing: asyncio.Task | None = None
        self._stopped: str | None = None
        self._heard_ms: int | None = None

    async def run(self) -> Message:
        """Produce, publish and store the reply; returns the stored message."""
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
        history = await settled_turns_before(query) if responder.uses_history else []
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
        if self._producing is not None and not self._producing.cancelled() and self._producing.exception():
            error = self._producing.exception()
            logger.error("Reply %s failed unexpectedly", self.message.pk, exc_info=error)
            await self._handle(pipeline.TextFailed(ResponderError(f"{type(error).__name__}: {error}")))
        message = await self.recorder.finish(self._stopped, self._heard_ms)
        await self.publisher.finished(message, self.recorder.chunks, self.recorder.metrics())


async def stop_replies(conversation: Conversation, channel_layer, status: str, before: int | None = None) -> None:
    """Stop the replies of ``conversation`` in production (those before reply ``before``), wherever they run.

    A reply nobody has started yet (a worker has not taken it) is stopped right
    here: it will never start, and its tabs are told.
    """
    running = conversation.messages.filter(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
    if before is not None:
        running = running.filter(pk__lt=before)
    async for reply in running:
        if not reply.producer_channel:
            unstarted = Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING, produced_by="")
            if await unstarted.aupdate(status=status, produced_by=NEVER_STARTED):
                reply.status = status
                publisher = GroupPublisher(channel_layer, conversation.group_name)
                await publisher.try_send(protocol.message_event(reply))
                await publisher.try_send(protocol.reply_done(reply.pk, status, {}))
                continue
            reply = await Message.objects.aget(pk=reply.pk)  # claimed just now: stop it where it runs
        if reply.producer_channel:
            await send_stop(channel_layer, reply.producer_channel, reply.pk, status, None)


async def record_heard(conversation: Conversation, channel_layer, message_id: int, heard_ms: int, status: str) -> None:
    """A tab played ``heard_ms`` of a reply and then stopped it: remember, and stop the reply.

    A reply still in production is stopped. One already stored but still
    being spoken (its audio outlasts its production) is marked ``status`` if
    less than all of it was heard.
    """
    reply = await conversation.messages.filter(pk=message_id, role=Message.Role.ASSISTANT).afirst()
    if reply is None:
        return
    replies = Message.objects.filter(pk=reply.pk, status=reply.status)
    if reply.status == Message.Status.STREAMING:
        # Written here too: the producer may be storing the reply right now.
        await replies.aupdate(heard_ms=heard_ms)
        if reply.producer_channel:
            await send_stop(channel_layer, reply.producer_channel, reply.pk, status, heard_ms)
    elif reply.status in (Message.Status.INTERRUPTED, Message.Status.CANCELLED):
        await replies.aupdate(heard_ms=heard_ms)
    elif reply.status in (Message.Status.COMPLETE, Message.Status.AUDIO_FAILED):
        if reply.duration_ms is not None and heard_ms >= reply.duration_ms:
            return  # heard to the end: nothing was cut
        if await replies.aupdate(status=status, heard_ms=heard_ms):
            reply.status, reply.heard_ms = status, heard_ms
            await GroupPublisher(channel_layer, conversation.group_name).try_send(protocol.message_event(reply))
