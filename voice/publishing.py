"""Telling every tab of a conversation what happens to a reply.

``GroupPublisher`` turns pipeline events into wire events (``voice.protocol``)
and sends them to the conversation's channel-layer group. Publishing is best
effort: when the channel layer is down, the reply is still produced and
stored, and clients catch up from the database.
"""

from __future__ import annotations

import logging

from . import pipeline, protocol
from .exceptions import VoiceError
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .models import Message

logger = logging.getLogger(__name__)


class GroupPublisher:
    def __init__(self, channel_layer, group: str, origin: str = "") -> None:
        self.channel_layer = channel_layer
        self.group = group
        self.origin = origin  # the channel of the tab that asked: it plays the reply
        self.failed = False

    async def send(self, event: protocol.Event) -> None:
        """Send one event; raises the channel layer's error (for callers that must know)."""
        await retrying(self.channel_layer.group_send, self.group, {**event.to_event(), "origin": self.origin})

    async def try_send(self, event: protocol.Event) -> None:
        """Send one event, or log why not: the reply goes on either way."""
        if self.failed:
            return  # one outage costs one retry, not one per token
        try:
            await self.send(event)
        except CHANNEL_LAYER_ERRORS:
            logger.exception("Could not publish to %s; the reply goes on unseen", self.group)
            self.failed = True

    async def announce(self, message: Message) -> None:
        await self.send(protocol.StoredMessage.of(message))

    async def error(self, error: VoiceError, message_id: int | None = None) -> None:
        await self.try_send(protocol.ErrorEvent.of(error, message_id))

    async def publish(self, message_id: int, event: pipeline.Event) -> None:
        """The wire form of one pipeline event, if it has one."""
        match event:
            case pipeline.TextDelta(text=text):
                await self.try_send(protocol.ReplyDelta(message_id, text))
            case pipeline.ReplyQueued(position=position, expected_wait=wait):
                await self.try_send(protocol.Queued.waiting(message_id, position, wait))
            case pipeline.SpeechChunk(chunk=chunk, segment=segment, seq=seq):
                if seq == 0:
                    await self.try_send(protocol.AudioStart.of(message_id, chunk))
                await self.try_send(protocol.AudioData.of(message_id, seq, chunk, segment))
            case pipeline.TextFailed(error=error) | pipeline.SpeechFailed(error=error):
                await self.error(error, message_id)

    async def finished(self, message: Message, chunks: int, metrics: dict) -> None:
        """The reply is stored: its audio, its final state, and the end of it."""
        self.failed = False  # the layer may be back: the end matters most
        if chunks:
            await self.try_send(protocol.AudioEnd(message.pk, chunks, message.duration_ms, message.audio_url))
        await self.try_send(protocol.StoredMessage.of(message))
        await self.try_send(protocol.ReplyDone(message.pk, message.status, metrics, message.cut))
