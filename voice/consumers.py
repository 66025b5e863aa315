"""The chat WebSocket: ``/ws/chat/<conversation_id>/``.

Every open tab of a conversation joins the group ``conversation.<id>`` and
receives every event; the tab that asked is told so (``requested_here``) and
is the only one that plays automatically. A query, typed or spoken
(``voice.listening``), interrupts the reply before it, wherever that reply is
produced. The protocol is in docs/protocol.md.

This module only adapts the socket: it reads client events
(``voice.protocol``), enforces the per-user limits, and hands each turn to
``voice.turns.Turns``, which owns it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import metrics, protocol, ratelimit
from .drafts import Draft
from .exceptions import VoiceError
from .handsfree import limits
from .handsfree.playback import Playback, chunk_samples, chunk_seconds
from .handsfree.session import HandsFreeSession
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .listening import Listening
from .models import Conversation, Message
from .producers import producers
from .protocol import Close
from .signals import session_fingerprint, session_user_pk, user_group
from .stt import STTError
from .turns import QueryRecording, Turns, Unavailable

logger = logging.getLogger(__name__)

# Chat sockets open in this process, by user: each holds memory (an utterance's audio, a hands-free session), so
# one account cannot open any number (VOICE_SOCKETS_PER_USER).
open_sockets: Counter[int] = Counter()

# Events that stop or switch something, counted together per user (VOICE_CONTROL_RATE_LIMIT).
CONTROL_EVENTS = (protocol.Cancel, protocol.Heard, protocol.SpeechCancel, protocol.ListenStart, protocol.ListenStop)
CONTROL_WHAT = "stops, listening switches and playback reports"


class ChatConsumer(AsyncWebsocketConsumer):
    conversation: Conversation | None = None
    joined = False
    listening: Listening | None = None  # an utterance arriving
    handsfree: HandsFreeSession | None = None  # hands-free mode: the open microphone's turns
    listening_claimed = 0.0  # when this socket last renewed its hands-free claim (voice.handsfree.limits)
    stray_audio_reported = False
    utterance_failed = False  # the last utterance was refused mid-way: its speech.end means nothing

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(Close.UNAUTHENTICATED)
            return
        self.conversation = await self._owned_conversation(user)
        if self.conversation is None:
            # Also for conversations that do not exist: ids are not to be probed.
            await self._refuse(Close.FORBIDDEN)
            return
        limit = settings.VOICE_SOCKETS_PER_USER
        if limit and open_sockets[user.pk] >= limit:
            await self._refuse(Close.TOO_MANY_SOCKETS)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.base64_audio = query.get("audio", [""])[0] == "base64"
        self.turns = Turns(self.conversation, self.channel_layer, self.channel_name)
        self.playback = Playback()
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
            await self.send_event(protocol.ErrorEvent.of(Unavailable()))
            await self.close(code=Close.UNAVAILABLE)
            return
        self.joined = True
        open_sockets[user.pk] += 1
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
        try:
            await self.end_handsfree(tell=False)
        finally:
            await self._leave()

    async def _leave(self) -> None:
        if not self.joined:
            return
        self.joined = False  # from here on, receive() ignores the client
        user_pk = self.scope["user"].pk
        open_sockets[user_pk] -= 1
        if open_sockets[user_pk] <= 0:
            del open_sockets[user_pk]
        metrics.ACTIVE_SOCKETS.dec()
        for group in (self.conversation.group_name, user_group(self.scope["user"].pk)):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except CHANNEL_LAYER_ERRORS:
                pass  # the group entry expires by itself

    # --- Sign-out (voice.signals) --------------------------------------------
    async def session_ended(self, event: dict) -> None:
        """The user logged out of a session: this socket closes if it rode on that one."""
        if protocol.SessionEnded.from_event(event).session == session_fingerprint(self.scope["session"].session_key):
            await self._sign_out()

    async def session_check(self, event: dict) -> None:
        """The user changed (a new password, deactivated): this socket closes if its session no longer logs in."""
        if await session_user_pk(self.scope["session"].session_key) != self.scope["user"].pk:
            await self._sign_out()

    async def _sign_out(self) -> None:
        # Out of the groups before the close: not one more event of the
        # conversation reaches a socket whose session has ended.
        self.end_listening()
        await self.end_handsfree(tell=False, drop_all=True)
        await self._leave()
        await self.close(code=Close.UNAUTHENTICATED)

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
            if isinstance(event, CONTROL_EVENTS):
                # Each does database work on the one shared database thread: a flood would delay everyone's.
                await self.within_rate_limit("control_rate_limited", settings.VOICE_CONTROL_RATE_LIMIT, CONTROL_WHAT)
            handler = {
                protocol.Query: self.on_query,
                protocol.Cancel: self.on_cancel,
                protocol.Heard: self.on_heard,
                protocol.PlaybackPosition: self.on_playback_position,
                protocol.SpeechStart: self.on_speech_start,
                protocol.SpeechEnd: self.on_speech_end,
                protocol.SpeechCancel: self.on_speech_cancel,
                protocol.ListenStart: self.on_listen_start,
                protocol.ListenStop: self.on_listen_stop,
            }
            await handler[type(event)](event)
        except VoiceError as exc:
            await self.send_event(protocol.ErrorEvent.of(exc))
        except Exception:
            # Whatever broke, the socket stays open and the client gets a plain answer.
            logger.exception("Chat event failed in conversation %s", self.conversation.pk)
            await self.send_event(protocol.ErrorEvent("internal_error", "Something went wrong on the server."))

    async def on_query(self, event: protocol.Query) -> None:
        received_at = time.monotonic()
        await self.ask(event.text, event.client_id, event.interrupted, received_at)

    async def ask(
        self,
        text: str,
        client_id: str,
        interrupted: protocol.Interrupted,
        received_at: float,
        recording: QueryRecording | None = None,
        draft: Draft | None = None,
    ) -> None:
        await self.within_rate_limit("rate_limited", settings.VOICE_CHAT_RATE_LIMIT, "messages")
        await self.within_reply_share()
        stored_before = await self.turns.ask(
            text,
            client_id=client_id,
            interrupted=interrupted,
            recording=recording,
            received_at=received_at,
            draft=draft,
        )
        if stored_before is not None:
            # Sent again after a reconnect, but already stored: confirm it, once.
            await self.send_event(protocol.StoredMessage.of(stored_before), requested_here=True)

    @property
    def account(self) -> str:
        """Whose work this socket's is, for the shares of work each account may hold at once."""
        return f"user:{self.scope['user'].pk}"

    async def within_rate_limit(self, code: str, limit: int, what: str) -> None:
        """Count one more ``what`` for this user (all tabs together); ProtocolError ``code`` past ``limit`` a minute."""
        if not await ratelimit.aallow(f"{code}:{self.scope['user'].pk}", limit):
            raise protocol.ProtocolError(
                code, f"That is more than {limit} {what} in a minute. Wait a moment, then try again."
            )

    async def within_reply_share(self) -> None:
        """ProtocolError ``too_many_replies`` while this user's replies in other conversations fill their share.

        A reply is written as fast as it is heard, so a long one holds a place of the model for a minute: one
        account asking in many conversations at once would hold them all. This conversation's own reply is not
        counted: the new query interrupts it.
        """
        limit = settings.VOICE_USER_REPLIES
        if limit <= 0:
            return
        writing = await (
            Message.objects.filter(
                conversation__owner=self.scope["user"], role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
            )
            .exclude(conversation=self.conversation)
            .acount()
        )
        if writing >= limit:
            raise protocol.ProtocolError(
                "too_many_replies",
                f"{writing} of your replies in other conversations are still being written. "
                "Wait for one to end, or stop it, then ask again.",
            )

    async def on_cancel(self, event: protocol.Cancel) -> None:
        self.playback.stopped_all()
        await self.turns.stop(Message.Status.CANCELLED, event.interrupted)

    async def on_heard(self, event: protocol.Heard) -> None:
        """A tab stopped playing a reply early (another tab interrupted it): how much it heard."""
        self.playback.stopped(event.message_id)
        await self.turns.heard(event.message_id, event.heard_ms, Message.Status.INTERRUPTED)

    async def on_playback_position(self, event: protocol.PlaybackPosition) -> None:
        """Where this tab's playback is, for the echo canceller: no database, nothing sent back."""
        if self.handsfree is not None:
            self.handsfree.position(event.message_id, event.played_ms, event.mic_samples)

    # --- Voice input -------------------------------------------------------
    async def on_speech_start(self, event: protocol.SpeechStart) -> None:
        if self.handsfree is not None:
            raise protocol.ProtocolError(
                "hands_free_on", "Hands-free mode is on: just talk. Turn it off to hold the button instead."
            )
        self.end_listening()
        self.stray_audio_reported = self.utterance_failed = False
        try:
            # Counted before any audio is heard: an utterance without words costs a transcription too.
            await self.within_rate_limit("speech_rate_limited", settings.VOICE_SPEECH_RATE_LIMIT, "utterances")
        except protocol.ProtocolError:
            self.stray_audio_reported = self.utterance_failed = True  # its audio and speech.end: dropped quietly
            raise
        self.listening = Listening(self.send_event, owner=self.account)
        # The person starts talking: whatever the assistant says stops now, as for a typed query.
        await self.turns.stop(Message.Status.INTERRUPTED, event.interrupted)

    async def on_audio(self, pcm: bytes) -> None:
        if self.handsfree is not None:
            await self.handsfree.feed(pcm)
            since = time.monotonic() - self.listening_claimed
            if self.handsfree is not None and since > limits.LEASE / 4:
                self.listening_claimed = time.monotonic()
                # Renewed, even past a lowered limit; but a claim that lapsed while nothing was sent may have
                # been taken by another socket meanwhile: then this one stops listening.
                renewal = since < limits.LEASE
                if not await limits.claim(self.scope["user"].pk, self.channel_name, renewal=renewal):
                    await self.end_handsfree(protocol.ListenOff.LIMIT)
            return
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

    async def on_speech_end(self, event: protocol.SpeechEnd) -> None:
        received_at = time.monotonic()
        listening, self.listening = self.listening, None
        if listening is None:
            if self.utterance_failed:
                self.utterance_failed = False
                return  # its error was sent already
            raise protocol.ProtocolError("speech_not_started", "There is no utterance to end: send speech.start first.")
        transcript = await listening.finish()  # NoSpeech: "I didn't catch that.", nothing stored
        pcm = listening.utterance.pcm()
        await self.ask_spoken(transcript.text, event.client_id, pcm, received_at, interrupted=event.interrupted)

    async def ask_spoken(
        self,
        text: str,
        client_id: str,
        pcm: bytes,
        received_at: float,
        *,
        turn_id: str = "",
        interrupted: protocol.Interrupted | None = None,
        draft: Draft | None = None,
    ) -> None:
        """A final transcript to the speaking tab, then stored as a query with its recording, and answered."""
        text = protocol.storable_text(text, limit=settings.VOICE_MAX_QUERY_CHARS)
        await self.send_event(protocol.Transcribed(text, final=True, turn_id=turn_id))
        recording = QueryRecording.of(pcm)
        await self.ask(text, client_id, interrupted or protocol.Interrupted(), received_at, recording, draft)

    def draft_reply(self, text: str) -> Draft | None:
        """Begin answering a hands-free turn's words before the turn is over (``voice.drafts``)."""
        try:
            text = protocol.storable_text(text, limit=settings.VOICE_MAX_QUERY_CHARS)
        except protocol.ProtocolError:
            return None  # the turn's end says why, if these are its words
        return self.turns.draft(text)

    async def on_speech_cancel(self, event: protocol.SpeechCancel) -> None:
        self.end_listening()

    def end_listening(self) -> None:
        if self.listening is not None:
            self.listening.cancel()
            self.listening = None

    # --- Hands-free mode (voice.handsfree) -----------------------------------
    async def on_listen_start(self, event: protocol.ListenStart) -> None:
        if self.handsfree is None:
            self.end_listening()
            if not await limits.claim(self.scope["user"].pk, self.channel_name):
                await self.send_event(protocol.ListenState(protocol.Listening.OFF, protocol.ListenOff.LIMIT))
                limit = settings.VOICE_HANDSFREE_SOCKETS_PER_USER
                raise protocol.ProtocolError(
                    "listen_limit",
                    f"Hands-free mode is on in {limit} other tabs or devices already: turn it off there first.",
                )
            self.listening_claimed = time.monotonic()
            session = HandsFreeSession(self, self.playback, owner=self.account)
            try:
                await session.start()
            except Exception:
                logger.exception("Hands-free mode could not start")
                await limits.release(self.scope["user"].pk, self.channel_name)
                await self.send_event(protocol.ListenState(protocol.Listening.OFF, protocol.ListenOff.FAILED))
                raise protocol.ProtocolError(
                    "listen_failed", "Hands-free mode could not start on the server; try again in a moment."
                ) from None
            self.handsfree = session
        await self.send_event(self.handsfree.state())

    async def on_listen_stop(self, event: protocol.ListenStop) -> None:
        await self.end_handsfree()

    async def end_handsfree(
        self, reason: protocol.ListenOff = protocol.ListenOff.STOPPED, *, tell: bool = True, drop_all: bool = False
    ) -> None:
        """Hands-free mode off (``drop_all``: turns already ended are not asked either); ``tell`` the tab."""
        session, self.handsfree = self.handsfree, None
        try:
            if session is not None:
                await (session.cancel() if drop_all else session.close())
        finally:
            if session is not None:
                try:
                    await limits.release(self.scope["user"].pk, self.channel_name)
                except Exception:
                    logger.exception("Could not release a hands-free claim; it lapses by itself")
            if tell:  # also when it was not on: listen.stop always has an answer
                await self.send_event(protocol.ListenState(protocol.Listening.OFF, reason))

    # The session's host (voice.handsfree.session.Host); ask_spoken is above.
    async def publish_event(self, event: protocol.Event) -> None:
        await self.turns.publisher(self.channel_name).try_send(event)

    async def count_turn(self) -> None:
        await self.within_rate_limit("speech_rate_limited", settings.VOICE_SPEECH_RATE_LIMIT, "utterances")

    async def interrupt_reply(self, message_id: int, heard_ms: int) -> None:
        await self.turns.stop(Message.Status.INTERRUPTED, protocol.Interrupted(message_id, heard_ms))

    async def listening_ended(self, reason: protocol.ListenOff) -> None:
        await self.end_handsfree(reason)

    # --- From the group ----------------------------------------------------
    async def send_event(self, event: protocol.Event, **extra: object) -> None:
        await self.send_json({**event.to_event(), **extra})

    async def send_json(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, separators=(",", ":")))

    async def forward(self, event: dict) -> None:
        """A server event from the conversation's group, as it is, but for whose it was."""
        await self.send_json({key: value for key, value in event.items() if key != "origin"})

    async def message(self, event: dict) -> None:
        message = event["message"]
        if message.get("role") == Message.Role.ASSISTANT and message.get("status") != Message.Status.STREAMING:
            self.playback.final_text(message["id"], message.get("text", ""))
            if message.get("status") in Message.STOPPED:
                self.playback.stopped(message["id"])
        await self.forward({**event, "requested_here": event.get("origin") == self.channel_name})

    queued = forward
    audio_start = forward
    audio_end = forward
    error = forward
    playback_duck = forward

    async def reply_delta(self, event: dict) -> None:
        self.playback.text(event["message_id"], event["text"])
        await self.forward(event)

    async def reply_done(self, event: dict) -> None:
        if event.get("status") in Message.STOPPED:
            self.playback.stopped(event["message_id"])
        await self.forward(event)

    async def audio_chunk(self, event: dict) -> None:
        chunk = protocol.AudioData.from_event(event)
        if event.get("origin") == self.channel_name:  # the page plays the replies it asked for
            header = chunk.header
            seconds = chunk_seconds(header, chunk.data)
            # Its sound too, while an echo canceller listens: its reference.
            listening = self.handsfree is not None and self.handsfree.canceller is not None
            samples = chunk_samples(header, chunk.data) if listening else None
            self.playback.audio(header["message_id"], seconds, header["text_start"], header["text_end"], samples)
        if self.base64_audio:
            await self.send_json(chunk.base64_event())
        else:
            await self.send(bytes_data=chunk.frame())

    # --- From a reply worker ----------------------------------------------
    async def reply_accepted(self, event: dict) -> None:
        self.turns.accepted(protocol.ReplyAccepted.from_event(event))


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Sockets to paths that lead nowhere: accepted, then closed with a reason (a 404 of sorts)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=Close.NOT_FOUND)
