"""A turn of a conversation: the user's query and the assistant's reply to it.

``Turns`` owns every step of a turn that a tab sets off, typed or spoken:

1. **accept**: store the query, and a placeholder reply linked to it, before
   anything else can fail (``accept_query``); tell every tab;
2. **interrupt**: the new query stops the replies before it, wherever they are
   produced, and records how much of them this tab heard;
3. **dispatch**: produce the reply here or hand it to a reply worker
   (``voice.dispatch``), which acknowledges it back through ``accepted``;
4. **stop** and **heard**: a tab stops a reply, or says how much it heard;
5. **finish**: the reply (``voice.replies.ChatReply``) stores and announces
   its own end, whatever happened to it.

The chat socket (``voice.consumers``) and the reply worker
(``voice.workers``) are thin adapters around this module and
``voice.dispatch``; stops travel through ``voice.producers``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from . import audio, dispatch, protocol
from .drafts import Draft
from .exceptions import VoiceError
from .layers import CHANNEL_LAYER_ERRORS
from .models import Conversation, Message
from .producers import producers, send_stop
from .publishing import GroupPublisher
from .replies import ChatReply

logger = logging.getLogger(__name__)

# produced_by of a reply stopped before any process took it on.
NEVER_STARTED = "stopped-before-start"


class Unavailable(VoiceError):
    code = "unavailable"
    public_message = "The live service is unavailable right now; try again in a moment."


class QueryKeptButUnavailable(Unavailable):
    public_message = "Your message was saved. " + Unavailable.public_message


@dataclass(frozen=True)
class QueryRecording:
    """What the user said, for a spoken query."""

    wav: bytes
    duration_ms: int

    @classmethod
    def of(cls, pcm: bytes) -> QueryRecording:
        """The recording of voice input (mono PCM16 at ``protocol.SPEECH_RATE``)."""
        rate = protocol.SPEECH_RATE
        return cls(audio.wav_bytes(pcm, rate), round(1000 * audio.pcm_duration(len(pcm), rate)))


@database_sync_to_async
def accept_query(
    conversation: Conversation, text: str, client_id: str = "", recording: QueryRecording | None = None
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


class Turns:
    """The turns one tab (``origin``, its channel) takes in a conversation."""

    def __init__(self, conversation: Conversation, channel_layer, origin: str) -> None:
        self.conversation = conversation
        self.channel_layer = channel_layer
        self.origin = origin
        self.pending: dict[int, dispatch.WorkerDispatch] = {}  # replies a worker may still acknowledge

    def publisher(self, origin: str = "") -> GroupPublisher:
        return GroupPublisher(self.channel_layer, self.conversation.group_name, origin=origin)

    async def ask(
        self,
        text: str,
        *,
        client_id: str = "",
        interrupted: protocol.Interrupted | None = None,
        recording: QueryRecording | None = None,
        received_at: float | None = None,
        draft: Draft | None = None,
    ) -> Message | None:
        """Accept a query, interrupt what came before it, and answer it.

        Returns the query when it was stored before (sent again after a
        reconnect): nothing more happens, and the tab alone is to be told.
        Raises ``QueryKeptButUnavailable`` when the query is stored but the
        channel layer is down: its reply is stored as failed. ``draft``: a
        reply begun before the query was stored (``draft``), used if it fits.
        """
        received_at = time.monotonic() if received_at is None else received_at
        query, reply_message = await accept_query(self.conversation, text, client_id, recording)
        if draft is not None and not (reply_message is not None and await draft.take(query)):
            draft.abandon()
            draft = None
        if reply_message is None:
            return query
        try:
            publisher = await self._announce(query, reply_message)
            # Barge-in: the new query interrupts whatever came before it.
            await self.stop(Message.Status.INTERRUPTED, interrupted, before=reply_message.pk)
        except BaseException:
            if draft is not None:
                draft.cancel()  # no reply will take it over
            raise
        reply = ChatReply(
            reply_message,
            publisher,
            voice=self.conversation.voice or None,
            speed=self.conversation.speed,
            received_at=received_at,
            draft=draft,
        )
        task = asyncio.create_task(dispatch.produce(reply, self.origin, self.pending))
        producers(self.channel_layer).hold(task)
        return None

    async def _announce(self, query: Message, reply_message: Message) -> GroupPublisher:
        """Tell every tab of the new query and its placeholder; the publisher for the reply."""
        publisher = self.publisher(self.origin)
        try:
            await publisher.announce(query)
            await publisher.announce(reply_message)
        except CHANNEL_LAYER_ERRORS as exc:
            logger.exception("Channel layer unavailable")
            error = QueryKeptButUnavailable("The channel layer was unavailable.")
            await Message.objects.filter(pk=reply_message.pk).aupdate(
                status=Message.Status.FAILED, error_code=error.code, error=str(error)
            )
            raise error from exc
        return publisher

    def draft(self, text: str) -> Draft | None:
        """Begin the reply to ``text`` before it is stored, for ``ask`` to take (None: not drafted here)."""
        if not Draft.wanted():
            return None
        return Draft(self.conversation, text, self.conversation.voice or None, self.conversation.speed)

    async def stop(
        self, status: str, interrupted: protocol.Interrupted | None = None, before: int | None = None
    ) -> None:
        """Stop the replies in production (those before reply ``before``), and record how much this tab heard."""
        if interrupted is not None and interrupted.message_id is not None and interrupted.heard_ms is not None:
            await self.heard(interrupted.message_id, interrupted.heard_ms, status)
        await self._stop_replies(status, before)

    async def _stop_replies(self, status: str, before: int | None) -> None:
        """Stop every reply of the conversation in production, wherever it runs.

        A reply nobody has started yet (a worker has not taken it) is stopped
        right here: it will never start, and its tabs are told.
        """
        running = self.conversation.messages.filter(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
        if before is not None:
            running = running.filter(pk__lt=before)
        async for reply in running:
            if not reply.producer_channel:
                unstarted = Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING, produced_by="")
                if await unstarted.aupdate(status=status, produced_by=NEVER_STARTED):
                    reply.status = status
                    publisher = self.publisher()
                    await publisher.try_send(protocol.StoredMessage.of(reply))
                    await publisher.try_send(protocol.ReplyDone(reply.pk, status, {}))
                    continue
                reply = await Message.objects.aget(pk=reply.pk)  # claimed just now: stop it where it runs
            if reply.producer_channel:
                await send_stop(self.channel_layer, reply.producer_channel, protocol.ReplyStop(reply.pk, status))

    async def heard(self, message_id: int, heard_ms: int, status: str) -> None:
        """The tab played ``heard_ms`` of a reply and then stopped it: remember, and stop the reply.

        A reply still in production is stopped. One already stored but still
        being spoken (its audio outlasts its production) is marked ``status``
        if less than all of it was heard.
        """
        reply = await self.conversation.messages.filter(pk=message_id, role=Message.Role.ASSISTANT).afirst()
        if reply is None:
            return
        replies = Message.objects.filter(pk=reply.pk, status=reply.status)
        if reply.status == Message.Status.STREAMING:
            # Written here too: the producer may be storing the reply right now.
            await replies.aupdate(heard_ms=heard_ms)
            if reply.producer_channel:
                stop = protocol.ReplyStop(reply.pk, status, heard_ms)
                await send_stop(self.channel_layer, reply.producer_channel, stop)
        elif reply.status in Message.STOPPED:
            await replies.aupdate(heard_ms=heard_ms)
        elif reply.status in (Message.Status.COMPLETE, Message.Status.AUDIO_FAILED):
            if reply.duration_ms is not None and heard_ms >= reply.duration_ms:
                return  # heard to the end: nothing was cut
            if await replies.aupdate(status=status, heard_ms=heard_ms):
                reply.status, reply.heard_ms = status, heard_ms
                await self.publisher().try_send(protocol.StoredMessage.of(reply))

    def accepted(self, acknowledgement: protocol.ReplyAccepted) -> None:
        """A reply worker took a reply this tab dispatched."""
        waiting = self.pending.get(acknowledgement.message_id)
        if waiting is not None:
            waiting.accepted()
