"""Producing, speaking and storing one assistant reply.

``accept_query`` stores the user's message before anything else can fail, and
an empty assistant message whose id the streamed events carry. ``Reply`` then
runs the responder, cuts its text into sentences, synthesizes them one by one
and publishes every delta and audio chunk the moment it exists; at the end it
stores the text, the whole audio and the latency figures. A failing engine
costs the audio, never the text; a failing responder keeps the text so far.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from . import audio
from .layers import CHANNEL_LAYER_ERRORS, retrying
from .models import Conversation, Message
from .responders import get_responder
from .sentences import Sentence, SentenceSplitter
from .tts import BaseEngine, TTSError, get_engine

logger = logging.getLogger(__name__)

# Channel-layer messages must stay well under the spec's 1 MB.
MAX_CHUNK_BYTES = 256 * 1024

# What a Reply writes: never produced_by, which belongs to the claim.
REPLY_FIELDS = [
    "text",
    "status",
    "error",
    "engine",
    "voice",
    "audio",
    "audio_format",
    "duration_ms",
    "ttfa_ms",
    "reply_ms",
    "synthesis_ms",
]

Publish = Callable[[dict], Awaitable[None]]


@database_sync_to_async
def accept_query(conversation: Conversation, text: str) -> tuple[Message, Message, list[Message]]:
    """Store the query and a placeholder reply; return them with the earlier history."""
    with transaction.atomic():
        # Another tab may have changed the voice or speed since this socket opened.
        conversation.refresh_from_db(fields=["voice", "speed", "title"])
        history = list(conversation.messages.all())
        query = conversation.messages.create(role=Message.Role.USER, text=text)
        reply = conversation.messages.create(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
        if not conversation.title:
            conversation.title = conversation.title_from(text)
        conversation.save(update_fields=["title", "updated_at"])
    return query, reply, history


@dataclass
class Metrics:
    received_at: float
    first_audio_at: float | None = None
    text_done_at: float | None = None
    synthesis_seconds: float = 0.0
    sentences: int = 0

    def ms_since_received(self, moment: float | None) -> int | None:
        return None if moment is None else round((moment - self.received_at) * 1000)


@dataclass
class Reply:
    message: Message
    query: str
    history: list[Message]
    publish: Publish
    engine: BaseEngine | None = None  # None: the configured engine
    voice: str | None = None
    speed: float = 1.0
    origin: str = ""  # channel name of the connection that asked
    received_at: float = field(default_factory=time.monotonic)  # time.monotonic() of the query
    speech_error: TTSError | None = None  # set: produce the text only, reporting this

    def __post_init__(self) -> None:
        self.metrics = Metrics(received_at=self.received_at)
        self.text = ""
        self.recording = audio.Recording()
        self.seq = 0
        self.cancelled = False
        self.reply_error: Exception | None = None
        self.audio_error: Exception | None = None
        self._sentences: asyncio.Queue[Sentence | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []

    async def run(self) -> Message:
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._speak())]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            # Even if we are being torn down, what was produced is kept.
            await asyncio.shield(self._finish())
        return self.message

    async def abandon(self, text: str, error: TTSError) -> None:
        """Store and announce a reply whose producer went silent: the text seen so far, audio_failed."""
        self.text = text
        self.audio_error = error
        await self._send_error(error.code, str(error))
        await self._finish()

    def cancel(self) -> None:
        """Stop at once; the text and audio so far are stored as ``cancelled``."""
        self.cancelled = True
        for task in self._tasks:
            task.cancel()

    async def announce(self, message: Message) -> None:
        """Tell the conversation a message was stored or finished (the ``message`` event)."""
        await self._send("message", message=message.as_event_payload())

    async def _send_error(self, code: str, message: str) -> None:
        await self._send("error", code=code, message=message, message_id=self.message.pk)

    async def _send(self, event_type: str, **payload) -> None:
        await retrying(self.publish, {"type": event_type, "origin": self.origin, **payload})

    async def _write(self) -> None:
        splitter = SentenceSplitter(first_clause_chars=settings.VOICE_FIRST_CLAUSE_CHARS)
        try:
            async for delta in get_responder().respond(self.query, self.history):
                if not delta:
                    continue
                self.text += delta
                await self._send("reply.delta", message_id=self.message.pk, text=delta)
                for sentence in splitter.feed(delta):
                    self._sentences.put_nowait(sentence)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("Responder failed for message %s", self.message.pk)
            self.reply_error = exc
            await self._send_error("reply_failed", f"The reply failed: {exc}")
        finally:
            # Speak what there is, even after a responder failure.
            if not self.cancelled:
                for sentence in splitter.flush():
                    self._sentences.put_nowait(sentence)
            self.metrics.text_done_at = time.monotonic()
            self._sentences.put_nowait(None)

    async def _speak(self) -> None:
        try:
            if self.speech_error is not None:
                raise self.speech_error
            # Resolved here so that a misconfigured engine or voice costs the
            # audio only, like any other speech failure.
            self.engine = self.engine or get_engine()
            self.voice = self.engine.get_voice(self.voice).id
        except TTSError as exc:
            await self._audio_failed(exc)
        while (sentence := await self._sentences.get()) is not None:
            if self.audio_error is not None:
                continue  # keep draining: the text still completes
            try:
                await self._speak_sentence(sentence)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, TTSError):
                    logger.exception("Speech engine failed for message %s", self.message.pk)
                await self._audio_failed(exc)

    async def _audio_failed(self, exc: Exception) -> None:
        self.audio_error = exc
        code = getattr(exc, "code", "tts_failed")
        await self._send_error(code, f"Speech failed; the reply continues as text. {exc}")

    async def _speak_sentence(self, sentence: Sentence) -> None:
        self.metrics.sentences += 1
        started = time.monotonic()
        async for chunk in self.engine.astream(sentence.text, self.voice, self.speed):
            self.metrics.synthesis_seconds += time.monotonic() - started
            for piece in audio.split(chunk, MAX_CHUNK_BYTES):
                await self._publish_chunk(piece, sentence)
            started = time.monotonic()
        self.metrics.synthesis_seconds += time.monotonic() - started

    async def _publish_chunk(self, chunk: audio.AudioChunk, sentence: Sentence) -> None:
        self.recording.add(chunk)
        if self.seq == 0:
            self.metrics.first_audio_at = time.monotonic()
            await self._send(
                "audio.start",
                message_id=self.message.pk,
                format=chunk.format,
                sample_rate=chunk.sample_rate,
                channels=chunk.channels,
            )
        header = {
            "message_id": self.message.pk,
            "seq": self.seq,
            "format": chunk.format,
            "sample_rate": chunk.sample_rate,
            "channels": chunk.channels,
            # Character span of the sentence in the reply text, for highlighting.
            "text_start": sentence.start,
            "text_end": sentence.end,
        }
        self.seq += 1
        await self._send("audio.chunk", header=header, data=chunk.data)

    async def _finish(self) -> None:
        message = self.message
        if self.cancelled:
            message.status = Message.Status.CANCELLED
        elif self.reply_error is not None:
            message.status = Message.Status.FAILED
            message.error = str(self.reply_error)
        elif self.audio_error is not None:
            message.status = Message.Status.AUDIO_FAILED
            message.error = str(self.audio_error)
        else:
            message.status = Message.Status.COMPLETE
        message.text = self.text
        message.engine = self.engine.name if self.engine else ""
        message.voice = self.voice or ""
        message.ttfa_ms = self.metrics.ms_since_received(self.metrics.first_audio_at)
        message.reply_ms = self.metrics.ms_since_received(self.metrics.text_done_at)
        message.synthesis_ms = round(self.metrics.synthesis_seconds * 1000)
        try:
            await database_sync_to_async(self._store)()
        except Exception as exc:
            # Keep the text even when the audio cannot be stored.
            logger.exception("Storing the reply audio of message %s failed", message.pk)
            message.audio = None
            message.status = Message.Status.AUDIO_FAILED
            message.error = f"Storing the audio failed: {exc}"
            await database_sync_to_async(message.save)(update_fields=REPLY_FIELDS)
            await self._send_error("audio_not_stored", message.error)

        try:
            if self.recording:
                await self._send(
                    "audio.end",
                    message_id=message.pk,
                    chunks=self.seq,
                    duration_ms=message.duration_ms,
                    url=message.audio_url,
                )
            await self.announce(message)
            await self._send("reply.done", message_id=message.pk, status=message.status, metrics=self.summary())
        except CHANNEL_LAYER_ERRORS:
            # The reply is stored; clients see it when they reload or reconnect.
            logger.exception("Could not announce the end of reply %s", message.pk)

    def _store(self) -> None:
        message = self.message
        if self.recording:
            message.duration_ms = round(self.recording.duration * 1000)
            message.audio_format = self.recording.file_format
            message.audio.save(
                f"{message.pk}.{message.audio_format}",
                ContentFile(self.recording.file_bytes()),
                save=False,
            )
        message.save(update_fields=REPLY_FIELDS)
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=timezone.now())

    def summary(self) -> dict:
        duration = (self.message.duration_ms or 0) / 1000
        return {
            "ttfa_ms": self.message.ttfa_ms,
            "reply_ms": self.message.reply_ms,
            "synthesis_ms": self.message.synthesis_ms,
            "duration_ms": self.message.duration_ms,
            "sentences": self.metrics.sentences,
            "chunks": self.seq,
            "real_time_factor": round(self.metrics.synthesis_seconds / duration, 3) if duration else None,
        }
