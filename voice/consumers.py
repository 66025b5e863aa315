"""The chat WebSocket: ``/ws/chat/<conversation_id>/``.

Every open tab of a conversation joins the group ``conversation.<id>`` and
receives every event; the tab that asked is told so (``requested_here``) and
is the only one that plays automatically. The protocol is in docs/protocol.md.
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

from . import dispatch, protocol
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .models import Conversation, Message
from .replies import Reply, accept_query

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 4503
UNAVAILABLE = "The live service is unavailable right now (channel layer down); try again in a moment."


class ChatConsumer(AsyncWebsocketConsumer):
    conversation: Conversation | None = None
    reply: dispatch.InlineReply | dispatch.WorkerReply | None = None
    reply_task: asyncio.Task | None = None
    joined = False

    async def connect(self) -> None:
        # Accept before closing: a close before accept becomes an HTTP 403 and
        # the browser sees only 1006, without our reason.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.conversation = await self._owned_conversation(user)
        if self.conversation is None:
            # Also for conversations that do not exist: ids are not to be probed.
            await self.close(code=CLOSE_FORBIDDEN)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.base64_audio = query.get("audio", [""])[0] == "base64"
        try:
            await retrying(self.channel_layer.group_add, self.conversation.group_name, self.channel_name)
        except CHANNEL_LAYER_ERRORS:
            logger.exception("Channel layer unavailable")
            await self.send_event(protocol.error_event("unavailable", UNAVAILABLE))
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        self.joined = True

    @database_sync_to_async
    def _owned_conversation(self, user) -> Conversation | None:
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        return Conversation.objects.filter(pk=conversation_id, owner=user).first()

    async def disconnect(self, code: int) -> None:
        if self.joined:
            try:
                await self.channel_layer.group_discard(self.conversation.group_name, self.channel_name)
            except CHANNEL_LAYER_ERRORS:
                pass  # the group entry expires by itself
        if self.reply_task is not None:
            await self.reply.detach(self.reply_task)

    # --- From the client ---------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            event = protocol.parse_client_event(text_data, bytes_data)
            handler = {"query": self.on_query, "cancel": self.on_cancel}.get(event["type"])
            if handler is None:
                raise protocol.ProtocolError("unknown_type", f"Unknown event type {event['type']!r}.")
            await handler(event)
        except protocol.ProtocolError as exc:
            await self.send_event(protocol.error_event(exc.code, str(exc)))

    async def on_query(self, event: dict) -> None:
        received_at = time.monotonic()
        text = event.get("text")
        if not isinstance(text, str) or not text.strip():
            raise protocol.ProtocolError("empty_text", "The query is empty.")
        text = text.strip()
        limit = settings.VOICE_MAX_QUERY_CHARS
        if len(text) > limit:
            raise protocol.ProtocolError(
                "text_too_long", f"The query has {len(text)} characters; the limit is {limit}."
            )
        if self.reply_task is not None and not self.reply_task.done():
            raise protocol.ProtocolError("busy", "A reply is still being spoken: cancel it first.")
        query, reply_message, history = await accept_query(self.conversation, text)
        group = self.conversation.group_name
        reply = Reply(
            message=reply_message,
            query=text,
            history=history,
            voice=self.conversation.voice or None,
            speed=self.conversation.speed,
            publish=lambda message: self.channel_layer.group_send(group, message),
            origin=self.channel_name,
            received_at=received_at,
        )
        try:
            for message in (query, reply_message):
                await reply.announce(message)
        except CHANNEL_LAYER_ERRORS:
            # The query is stored; only the live part is down. Say so at once.
            logger.exception("Channel layer unavailable")
            await database_sync_to_async(Message.objects.filter(pk=reply_message.pk).update)(
                status=Message.Status.FAILED, error="The channel layer was unavailable."
            )
            await self.send_event(protocol.error_event("unavailable", "Your message was saved. " + UNAVAILABLE))
            return
        self.reply = dispatch.start(reply, self.channel_layer, reply_to=self.channel_name, group=group)
        self.reply_task = asyncio.create_task(self.reply.run())

    async def on_cancel(self, event: dict) -> None:
        if self.reply is not None and self.reply_task is not None and not self.reply_task.done():
            await self.reply.cancel(self.reply_task)

    # --- From the group ----------------------------------------------------
    async def send_event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, separators=(",", ":")))

    async def forward(self, event: dict) -> None:
        self.observe(event)
        event = {key: value for key, value in event.items() if key != "origin"}
        await self.send_event(event)

    def observe(self, event: dict) -> None:
        """Let a reply handed to a worker see its progress."""
        if self.reply is not None:
            self.reply.observe(event)

    async def message(self, event: dict) -> None:
        requested_here = event.get("origin") == self.channel_name
        await self.forward({**event, "requested_here": requested_here})

    reply_delta = forward
    audio_start = forward
    audio_end = forward
    reply_done = forward
    error = forward

    async def audio_chunk(self, event: dict) -> None:
        self.observe(event)
        if self.base64_audio:
            await self.send_event(protocol.audio_chunk_event(event["header"], event["data"]))
        else:
            await self.send(bytes_data=protocol.encode_audio_frame(event["header"], event["data"]))

    # --- From a speech worker ---------------------------------------------
    async def tts_accepted(self, event: dict) -> None:
        if self.reply is not None:
            await self.reply.accepted(event)
