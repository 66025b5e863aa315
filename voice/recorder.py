"""Keeping what a reply produced: progressively while it runs, for good at the end.

``ReplyRecorder`` follows the pipeline's events. While the reply runs, it saves
the text, the reasoning and the spoken segments at every sentence and at least
every VOICE_REPLY_HEARTBEAT seconds, refreshing the reply's heartbeat: a crash
loses at most the sentence being written, and a reply whose heartbeat stops is
finalized by ``voice.recovery``. At the end it stores the audio file, the
outcome and the latency figures.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from . import audio, metrics, pipeline
from .exceptions import VoiceError
from .layers import raise_if_cancelled
from .models import Conversation, Message

logger = logging.getLogger(__name__)

# What the recorder writes at the end: never produced_by, which belongs to the claim.
FINAL_FIELDS = [
    "text",
    "reasoning",
    "status",
    "cut",
    "error_code",
    "error",
    "engine",
    "voice",
    "audio",
    "audio_format",
    "duration_ms",
    "segments",
    "first_text_ms",
    "ttfa_ms",
    "reply_ms",
    "synthesis_ms",
]


class AudioNotStored(VoiceError):
    code = "audio_not_stored"
    public_message = "The reply's audio could not be saved; its text is kept."


class ReplyRecorder:
    def __init__(self, message: Message, received_at: float) -> None:
        self.message = message
        self.received_at = received_at  # time.monotonic() when the query arrived
        self.text = ""
        self.reasoning = ""
        self.recording = audio.Recording()
        self.segments: list[list[int]] = []
        self.chunks = 0
        self.sentences = 0
        self.engine = ""
        self.voice = ""
        self.cut = ""  # why the pipeline ended the reply early
        self.text_error: VoiceError | None = None
        self.speech_error: VoiceError | None = None
        self.first_text_at: float | None = None
        self.first_audio_at: float | None = None
        self.text_done_at: float | None = None
        self.synthesis_seconds = 0.0
        self.prompt: pipeline.PromptRead | None = None
        self._changed: asyncio.Event | None = None
        self._saved = (None, None, None)

    # --- Following the reply --------------------------------------------------
    def observe(self, event: pipeline.Event) -> None:
        now = time.monotonic()
        match event:
            case pipeline.TextDelta(text=text):
                self.first_text_at = self.first_text_at or now
                self.text += text
            case pipeline.ReasoningDelta(text=text):
                self.reasoning += text
            case pipeline.PromptRead() as prompt:
                self.prompt = prompt
            case pipeline.SentenceWritten():
                self.sentences += 1
                self._mark_changed()
            case pipeline.TextCut(reason=reason, display_end=end):
                # What was shown past the last segment said was never said: the stored reply is what was.
                self.cut = reason
                self.text = self.text[:end]
                self._mark_changed()
            case pipeline.TextDone():
                self.text_done_at = now
                self._mark_changed()
            case pipeline.TextFailed(error=error):
                self.text_error = error
            case pipeline.SpeechStarted(engine=engine, voice=voice):
                self.engine, self.voice = engine, voice
            case pipeline.SpeechChunk(chunk=chunk):
                self.first_audio_at = self.first_audio_at or now
                self.recording.add(chunk)
                self.chunks += 1
            case pipeline.SegmentSpoken(segment=segment, audio_start=start, audio_end=end) as spoken:
                self.segments.append([segment.start, segment.end, round(start * 1000), round(end * 1000)])
                self.synthesis_seconds += spoken.synthesis_seconds
                self._mark_changed()
            case pipeline.SpeechFailed(error=error):
                self.speech_error = error

    def _mark_changed(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def keep_checkpoints(self) -> None:
        """Save progress at every sentence and heartbeat; runs until cancelled."""
        self._changed = asyncio.Event()
        while True:
            raise_if_cancelled()
            try:
                # Not asyncio.wait_for: on Python 3.11 it can swallow the cancel that ends this loop.
                async with asyncio.timeout(settings.VOICE_REPLY_HEARTBEAT):
                    await self._changed.wait()
            except TimeoutError:
                pass
            self._changed.clear()
            try:
                await self.checkpoint()
            except Exception:
                raise_if_cancelled()
                # A database hiccup must not stop the reply; the next beat retries.
                logger.exception("Checkpoint of reply %s failed", self.message.pk)

    async def checkpoint(self) -> None:
        state = (self.text, self.reasoning, len(self.segments))
        fields = {"heartbeat_at": timezone.now()}
        if state != self._saved:
            fields.update(text=self.text, reasoning=self.reasoning, segments=list(self.segments))
        await Message.objects.filter(pk=self.message.pk, status=Message.Status.STREAMING).aupdate(**fields)
        self._saved = state

    # --- The end ------------------------------------------------------------------
    def outcome(self, stopped: str | None) -> tuple[str, VoiceError | None]:
        """The reply's final status, and the error to record with it."""
        if stopped:
            return stopped, None
        if self.text_error is not None:
            return Message.Status.FAILED, self.text_error
        if self.speech_error is not None:
            return Message.Status.AUDIO_FAILED, self.speech_error
        return Message.Status.COMPLETE, None

    async def finish(self, stopped: str | None = None, heard_ms: int | None = None) -> Message:
        """Store the reply for good; ``stopped`` is the status of a reply that was cut short."""
        message = self.message
        status, error = self.outcome(stopped)
        message.status = status
        message.error_code = error.code if error else ""
        message.error = str(error) if error else ""
        message.text = self.text
        message.cut = self.cut
        message.reasoning = self.reasoning
        message.engine = self.engine
        message.voice = self.voice
        message.segments = list(self.segments)
        message.first_text_ms = self._ms(self.first_text_at)
        message.ttfa_ms = self._ms(self.first_audio_at)
        message.reply_ms = self._ms(self.text_done_at)
        message.synthesis_ms = round(self.synthesis_seconds * 1000)
        fields = list(FINAL_FIELDS)
        if heard_ms is not None:
            message.heard_ms = heard_ms
            fields.append("heard_ms")
        metrics.REPLIES.labels(status=message.status).inc()
        if message.ttfa_ms is not None:
            metrics.TTFA.observe(message.ttfa_ms / 1000)
        try:
            await database_sync_to_async(self._store)(fields)
        except Exception as exc:
            if not await Message.objects.filter(pk=message.pk).aexists():
                logger.info("Reply %s was deleted (with its conversation) before it was stored", message.pk)
                return message
            # Keep the text even when the audio cannot be stored.
            logger.exception("Storing the audio of reply %s failed", message.pk)
            message.audio = None
            message.audio_format = ""
            message.duration_ms = None
            if status == Message.Status.COMPLETE:
                message.status = Message.Status.AUDIO_FAILED
            self.speech_error = AudioNotStored(f"Storing the audio failed: {exc!r}")
            message.error_code, message.error = self.speech_error.code, str(self.speech_error)
            await database_sync_to_async(message.save)(update_fields=fields)
        return message

    def _store(self, fields: list[str]) -> None:
        message = self.message
        if self.recording:
            message.duration_ms = round(self.recording.duration * 1000)
            message.audio_format = self.recording.file_format
            message.audio.save(
                f"{message.pk}.{message.audio_format}", ContentFile(self.recording.file_bytes()), save=False
            )
        try:
            message.save(update_fields=fields)
        except BaseException:
            if message.audio:
                message.audio.delete(save=False)  # no file without its row (deleted meanwhile, or not saved)
            raise
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=timezone.now())

    def _ms(self, moment: float | None) -> int | None:
        return None if moment is None else max(0, round((moment - self.received_at) * 1000))

    def metrics(self) -> dict:
        message = self.message
        duration = (message.duration_ms or 0) / 1000
        return {
            "first_text_ms": message.first_text_ms,
            "ttfa_ms": message.ttfa_ms,
            "reply_ms": message.reply_ms,
            "synthesis_ms": message.synthesis_ms,
            "duration_ms": message.duration_ms,
            "sentences": self.sentences,
            "chunks": self.chunks,
            "real_time_factor": round(self.synthesis_seconds / duration, 3) if duration else None,
        } | self._prompt_metrics()

    def _prompt_metrics(self) -> dict:
        """What the model read, when the responder says (the local model does)."""
        if self.prompt is None:
            return {}
        return {
            "prompt_tokens": self.prompt.prompt_tokens,
            "prompt_tokens_read": self.prompt.read_tokens,
            "model_memory": self.prompt.memory,
        }
