"""The chat WebSocket: ``/ws/chat/<conversation_id>/``.

Every open tab of a conversation joins the group ``conversation.<id>`` and
receives every event; the tab that asked is told so (``requested_here``) and
is the only one that plays automatically. A query, typed or spoken
(``voice.listening``), interrupts the reply before it, wherever that reply is
produced. The protocol is in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import dispatch, metrics, protocol, ratelimit
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .listening import Listening
from .models import Conversation, Message
from .producers import producers
from .publishing import GroupPublisher
from .replies import ChatReply, Recording, accept_query, record_heard, stop_replies
from .signals import session_fingerprint, session_user_pk, user_group
from .stt import STTError

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_UNAVAILABLE = 4503
UNAVAILABLE = "The live service is unavailable right now; try again in a moment."


class ChatConsumer(AsyncWebsocketConsumer):
    conversation: Conversation | None = None
    joined = False
    listening: Listening | None = None  # an utterance arriving
    stray_audio_reported = False
    utterance_failed = False  # the last utterance was refused mid-way: its speech.end means nothing

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        self.conversation = await self._owned_conversation(user)
        if self.conversation is None:
            # Also for conversations that do not exist: ids are not to be probed.
            await self._refuse(CLOSE_FORBIDDEN)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.base64_audio = query.get("audio", [""])[0] == "base64"
        self.pending: dict[int, dispatch.WorkerDispatch] = {}  # replies a worker may still acknowledge
        try:
            # Joined before the handshake completes: once a client is connected,
            # it hears every event of the conversation, even one sent right away.
            await retrying(self.channel_layer.group_add, self.conversation.group_name, self.channel_name)
            # Logging out or a new password closes this socket (voice.signals).
            await retrying(self.channel_layer.group_add, user_group(user.pk), self.channel_name)
            # Replies produced here must be reachable by stops from any tab.
            await producers(self.channel_layer).listen()
        except CHANNEL_LAYER_ERRORS:
            logger.exception("Channel layer unavailable")
            await self.accept()
            await self.send_event(protocol.error_event("unavailable", UNAVAILABLE))
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        self.joined = True
        metrics.ACTIVE_SOCKETS.inc()
        await self.accept()

    async def _refuse(self, code: int) -> None:
        # Accept before closing: a close before accept becomes an HTTP 403 and
        # the browser sees only 1006, without our reason.
        await self.accept()
        await self.close(code=code)

    @database_sync_to_async
    def _owned_conversation(self, user) -> Conversation | None:
        conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        return Conversation.objects.filter(pk=conversation_id, owner=user).first()

    async def disconnect(self, code: int) -> None:
        # Replies go on without this tab: other tabs and the history want them.
        self.end_listening()
        await self._leave()

    async def _leave(self) -> None:
        if not self.joined:
            return
        self.joined = False  # from here on, receive() ignores the client
        metrics.ACTIVE_SOCKETS.dec()
        for group in (self.conversation.group_name, user_group(self.scope["user"].pk)):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except CHANNEL_LAYER_ERRORS:
                pass  # the group entry expires by itself

    # --- Sign-out (voice.signals) --------------------------------------------
    async def session_ended(self, event: dict) -> None:
        """The user logged out of a session: this socket closes if it rode on that one."""
        if event.get("session") == session_fingerprint(self.scope["session"].session_key):
            await self._sign_out()

    async def session_check(self, event: dict) -> None:
        """The user changed (a new password, deactivated): this socket closes if its session no longer logs in."""
        if await session_user_pk(self.scope["session"].session_key) != self.scope["user"].pk:
            await self._sign_out()

    async def _sign_out(self) -> None:
        # Out of the groups before the close: not one more event of the
        # conversation reaches a socket whose session has ended.
        self.end_listening()
        await self._leave()
        await self.close(code=CLOSE_UNAUTHENTICATED)

    # --- From the client ---------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.joined:
            return
        try:
            protocol.check_frame_size(text_data if bytes_data is None else bytes_data, settings.VOICE_WS_MAX_FRAME)
            if bytes_data is not None:
                await self.on_audio(bytes_data)
                return
            event = protocol.parse_client_event(text_data)
            handler = {
                protocol.QUERY: self.on_query,
                protocol.CANCEL: self.on_cancel,
                protocol.HEARD: self.on_heard,
                protocol.SPEECH_START: self.on_speech_start,
                protocol.SPEECH_END: self.on_speech_end,
                protocol.SPEECH_CANCEL: self.on_speech_cancel,
            }
            await handler[event["type"]](event)
        except (protocol.ProtocolError, STTError) as exc:
            message = str(exc) if isinstance(exc, protocol.ProtocolError) else exc.public_message
            await self.send_event(protocol.error_event(exc.code, message))
        except Exception:
            # Whatever broke, the socket stays open and the client gets a plain answer.
            logger.exception("Chat event failed in conversation %s", self.conversation.pk)
            await self.send_event(protocol.error_event("internal_error", "Something went wrong on the server."))

    async def on_query(self, event: dict) -> None:
        received_at = time.monotonic()
        text = protocol.storable_text(event.get("text"), limit=settings.VOICE_MAX_QUERY_CHARS)
        await self.ask(text, event, received_at)

    async def ask(self, text: str, event: dict, received_at: float, recording: Recording | None = None) -> None:
        """Store a query (typed, or said: with its ``recording``), interrupt what came before it, and answer it."""
        interrupted_id = protocol.optional_id(event)
        heard_ms = protocol.optional_heard_ms(event)
        client_id = protocol.optional_client_id(event)
        await self.within_rate_limit("rate_limited", settings.VOICE_CHAT_RATE_LIMIT, "messages")
        query, reply_message = await accept_query(self.conversation, text, client_id, recording)
        publisher = GroupPublisher(self.channel_layer, self.conversation.group_name, origin=self.channel_name)
        if reply_message is None:
            # Sent again after a reconnect, but already stored: confirm it, once.
            await self.send_event({**protocol.message_event(query), "requested_here": True})
            return
        try:
            await publisher.announce(query)
            await publisher.announce(reply_message)
        except CHANNEL_LAYER_ERRORS:
            # The query is stored; only the live part is down. Say so at once.
            logger.exception("Channel layer unavailable")
            await Message.objects.filter(pk=reply_message.pk).aupdate(
                status=Message.Status.FAILED, error_code="unavailable", error="The channel layer was unavailable."
            )
            await self.send_event(protocol.error_event("unavailable", "Your message was saved. " + UNAVAILABLE))
            return
        # Barge-in: the new query interrupts whatever came before it.
        await self.interrupt(interrupted_id, heard_ms, Message.Status.INTERRUPTED, before=reply_message.pk)
        reply = ChatReply(
            reply_message,
            publisher,
            voice=self.conversation.voice or None,
            speed=self.conversation.speed,
            received_at=received_at,
        )
        task = asyncio.create_task(dispatch.produce(reply, self.channel_name, self.pending))
        producers(self.channel_layer).hold(task)

    async def within_rate_limit(self, code: str, limit: int, what: str) -> None:
        """Count one more ``what`` for this user (all tabs together); ProtocolError ``code`` past ``limit`` a minute."""
        if not await ratelimit.aallow(f"{code}:{self.scope['user'].pk}", limit):
            raise protocol.ProtocolError(
                code, f"That is more than {limit} {what} in a minute. Wait a moment, then try again."
            )

    async def interrupt(
        self, message_id: int | None, heard_ms: int | None, status: str, before: int | None = None
    ) -> None:
        """Stop the replies in production, and record how much of ``message_id`` this tab heard."""
        if message_id is not None and heard_ms is not None:
            await record_heard(self.conversation, self.channel_layer, message_id, heard_ms, status)
        await stop_replies(self.conversation, self.channel_layer, status, before=before)

    async def on_cancel(self, event: dict) -> None:
        await self.interrupt(protocol.optional_id(event), protocol.optional_heard_ms(event), Message.Status.CANCELLED)

    async def on_heard(self, event: dict) -> None:
        """A tab stopped playing a reply early (another tab interrupted it): how much it heard."""
        message_id = protocol.optional_id(event)
        heard_ms = protocol.optional_heard_ms(event)
        if message_id is None or heard_ms is None:
            raise protocol.ProtocolError("bad_event", '"heard" needs "message_id" and "heard_ms".')
        await record_heard(self.conversation, self.channel_layer, message_id, heard_ms, Message.Status.INTERRUPTED)

    # --- Voice input -------------------------------------------------------
    async def on_speech_start(self, event: dict) -> None:
        protocol.check_speech_format(event)
        self.end_listening()
        self.stray_audio_reported = self.utterance_failed = False
        try:
            # Counted before any audio is heard: an utterance without words costs a transcription too.
            await self.within_rate_limit("speech_rate_limited", settings.VOICE_SPEECH_RATE_LIMIT, "utterances")
        except protocol.ProtocolError:
            self.stray_audio_reported = self.utterance_failed = True  # its audio and speech.end: dropped quietly
            raise
        self.listening = Listening(self.send_event)
        # The person starts talking: whatever the assistant says stops now, as for a typed query.
        await self.interrupt(protocol.optional_id(event), protocol.optional_heard_ms(event), Message.Status.INTERRUPTED)

    async def on_audio(self, pcm: bytes) -> None:
        if self.listening is None:
            if not self.stray_audio_reported:  # once, not once per frame
                self.stray_audio_reported = True
                raise protocol.ProtocolError("speech_not_started", "Send speech.start before audio.")
            return
        try:
            self.listening.add(pcm)
        except STTError:
            self.end_listening()  # too long, or not PCM16: this utterance is over
            self.stray_audio_reported = self.utterance_failed = True  # the rest of it is dropped quietly
            raise

    async def on_speech_end(self, event: dict) -> None:
        received_at = time.monotonic()
        listening, self.listening = self.listening, None
        if listening is None:
            if self.utterance_failed:
                self.utterance_failed = False
                return  # its error was sent already
            raise protocol.ProtocolError("speech_not_started", "There is no utterance to end: send speech.start first.")
        transcript = await listening.finish()  # NoSpeech: "I didn't catch that.", nothing stored
        text = protocol.storable_text(transcript.text, limit=settings.VOICE_MAX_QUERY_CHARS)
        await self.send_event(protocol.transcript_event(text, final=True))
        recording = Recording(listening.utterance.wav(), round(listening.utterance.duration * 1000))
        await self.ask(text, event, received_at, recording)

    async def on_speech_cancel(self, event: dict) -> None:
        self.end_listening()

    def end_listening(self) -> None:
        if self.listening is not None:
            self.listening.cancel()
            self.listening = None

    # --- From the group ----------------------------------------------------
    async def send_event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, separators=(",", ":")))

    async def forward(self, event: dict) -> None:
        await self.send_event({key: value for key, value in event.items() if key != "origin"})

    async def message(self, event: dict) -> None:
        await self.forward({**event, "requested_here": event.get("origin") == self.channel_name})

    queued = forward
    reply_delta = forward
    audio_start = forward
    audio_end = forward
    reply_done = forward
    error = forward

    async def audio_chunk(self, event: dict) -> None:
        if self.base64_audio:
            await self.send_event(protocol.audio_chunk_event(event["header"], event["data"]))
        else:
            await self.send(bytes_data=protocol.encode_audio_frame(event["header"], event["data"]))

    # --- From a speech worker ---------------------------------------------
    async def tts_accepted(self, event: dict) -> None:
        dispatch_ = self.pending.get(event.get("message_id"))
        if dispatch_ is not None:
            dispatch_.accepted(event)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Sockets to paths that lead nowhere: accepted, then closed with a reason (a 404 of sorts)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
