"""One listening socket in hands-free mode: from an open microphone to stored queries.

``HandsFreeSession.feed`` takes the microphone's PCM as it arrives. The turn
detector (``detector``) runs in one small thread pool shared by every socket
of the process (about 0.1 ms of CPU per 32 ms window: the event loop never
runs the model). For each turn:

- **start**: the tab is told (``listen.turn`` speaking). If the assistant is
  audible, every tab ducks that reply (``playback.duck``).
- **while it lasts**: a partial transcript every VOICE_HANDSFREE_PARTIAL_SECONDS
  (skipped while other transcriptions wait: finals first). While a reply is
  ducked, each partial is judged (``echo.classify``): a command or new words
  stop the reply at once (barge-in), stored ``interrupted``.
- **quiet**: at VOICE_HANDSFREE_EAGER_MS of silence the final transcription
  starts; if the turn then ends with no new speech, it is the final one.
- **end**: nothing is stored for noise, echo, an acknowledgement or a bare
  "stop"; otherwise the words are stored with the recording and answered, as
  a spoken query is (``client_id`` = the turn's id).

The socket (``voice.consumers``) is the ``Host``: it owns sending, the
conversation's group and the turns.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings

from .. import audio, protocol
from ..exceptions import STTError, VoiceError
from ..stt import SAMPLE_RATE, Transcript
from ..stt.service import transcription
from ..turns import QueryRecording
from . import vad
from .detector import OnsetFaded, SpeechOnset, SpeechQuiet, SpeechResumed, SpeechStarted, TurnDetector, TurnEnded
from .echo import COMMANDS, FUNCTION_WORDS, Heard, classify, words
from .playback import RECENT, Playback, Spoken

logger = logging.getLogger(__name__)

# Voice activity for every listening socket of this process: one thread is plenty (see above).
_vad_threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice-vad")


class Host(Protocol):
    """What a session needs from its socket."""

    async def send_event(self, event: protocol.Event) -> None:
        """To this tab."""

    async def publish_event(self, event: protocol.Event) -> None:
        """To every tab of the conversation."""

    async def ask_spoken(self, text: str, turn_id: str, recording: QueryRecording, received_at: float) -> None:
        """Store ``text`` as a spoken query (with its recording) and answer it."""

    async def interrupt_reply(self, message_id: int, heard_ms: int) -> None:
        """Stop reply ``message_id`` (barge-in), heard for ``heard_ms``."""

    async def listening_ended(self, reason: str) -> None:
        """The session stopped itself (``idle``)."""


@dataclass
class Turn:
    id: str = field(default_factory=lambda: f"h-{secrets.token_hex(6)}")
    started: float = field(default_factory=time.monotonic)
    ducked: Spoken | None = None  # the reply lowered for this turn
    barged_in: bool = False
    partial: asyncio.Task | None = None  # the latest partial transcription
    partial_at: float = 0.0  # stream seconds when it started
    partial_voiced: int = -1  # of the audio it transcribes: bytes up to the last voiced window
    eager: asyncio.Task | None = None  # the speculative final transcription
    eager_voiced: int = -1  # of the audio it transcribes: bytes up to the last voiced window


class HandsFreeSession:
    def __init__(self, host: Host, playback: Playback, *, language: str | None = None) -> None:
        self.host = host
        self.playback = playback
        self.language = language
        self.stream = vad.SileroStream()
        self.detector = TurnDetector(self.stream.probability, on_gate=self.stream.reset)
        self.turn: Turn | None = None
        self.ducked: Spoken | None = None  # lowered at a speech onset, before any turn began
        self.last_speech = 0.0  # seconds of the stream: a silent microphone turns the mode off
        self.closed = False
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Load the VAD, and start the transcription processes: the first words should not wait for them."""
        await asyncio.get_running_loop().run_in_executor(_vad_threads, prepare)

    async def feed(self, pcm: bytes) -> None:
        """More of the microphone (PCM16, 16 kHz, mono)."""
        if self.closed:
            return
        if len(pcm) % 2:
            raise protocol.ProtocolError("bad_audio", "PCM16 frames must hold whole samples.")
        events = await asyncio.get_running_loop().run_in_executor(_vad_threads, self.detector.feed, pcm)
        for event in events:
            if isinstance(event, SpeechOnset):
                await self._onset()
            elif isinstance(event, OnsetFaded):
                await self._faded()
            elif isinstance(event, SpeechStarted):
                await self._started()
            elif isinstance(event, SpeechQuiet):
                self._quiet()
            elif isinstance(event, SpeechResumed):
                pass  # the speculative transcript is stale; a newer one comes at the next quiet
            elif isinstance(event, TurnEnded):
                await self._ended(event)
        if self.turn is not None:
            self.last_speech = self.detector.seconds
            self._maybe_partial()
        elif self.detector.seconds - self.last_speech > settings.VOICE_HANDSFREE_IDLE_MINUTES * 60:
            await self.close()
            await self.host.listening_ended("idle")

    async def close(self) -> None:
        """Stop listening; a turn not yet ended is dropped (its work is cancelled)."""
        self.closed = True
        await self._faded()
        if self.turn is not None:
            await self._unduck(self.turn)
            self._cancel(self.turn)
            self.turn = None
        self.detector.reset()

    # --- A turn -----------------------------------------------------------------
    async def _onset(self) -> None:
        # A voice over the reply: every tab lowers it now, before it is known to be a turn (barge-in
        # within 200 ms of the first syllable); a cough lets it back up at once.
        speaking = self.playback.speaking()
        if speaking is not None and self.ducked is None:
            self.ducked = speaking
            await self.host.publish_event(protocol.PlaybackDuck(speaking.message_id, True))

    async def _faded(self) -> None:
        ducked, self.ducked = self.ducked, None
        if ducked is not None:
            await self.host.publish_event(protocol.PlaybackDuck(ducked.message_id, False))

    async def _started(self) -> None:
        turn = self.turn = Turn(partial_at=self.detector.seconds)
        await self.host.send_event(protocol.ListenTurn(turn.id, "speaking"))
        await self._onset()  # no onset for speech that began mid-window run: lowered here then
        turn.ducked, self.ducked = self.ducked, None

    def _maybe_partial(self) -> None:
        turn = self.turn
        every = settings.VOICE_HANDSFREE_PARTIAL_SECONDS
        if not every or (turn.partial is not None and not turn.partial.done()):
            return
        # Only while words come: a pass started as they stop would hold up the final one behind it.
        if not self.detector.voicing or self.detector.seconds - turn.partial_at < every or transcription().waiting:
            return
        turn.partial_at, turn.partial_voiced = self.detector.seconds, self.detector.voiced
        turn.partial = self._spawn(transcription().transcribe(self.detector.turn_audio(), self.language))
        self._spawn(self._show_partial(turn, turn.partial))

    async def _show_partial(self, turn: Turn, partial: asyncio.Task) -> None:
        try:
            transcript = await asyncio.shield(partial)  # it may become the final one: not cancelled with this
        except STTError as exc:
            logger.info("A hands-free partial transcript failed: %s", exc)
            return
        if turn is not self.turn or not transcript.text:
            return
        await self.host.send_event(protocol.Transcribed(transcript.text, final=False, turn_id=turn.id))
        if turn.ducked is not None and not turn.barged_in:
            heard = classify(transcript.text, self._said(turn))
            if heard in (Heard.COMMAND, Heard.SPEECH):
                await self._barge_in(turn)

    def _quiet(self) -> None:
        turn = self.turn
        turn.eager_voiced = self.detector.voiced
        if turn.partial is not None and turn.partial_voiced == turn.eager_voiced:
            turn.eager = turn.partial  # it heard every word already: it is the final transcription
        else:
            turn.eager = self._spawn(transcription().transcribe(self.detector.turn_audio(), self.language))

    async def _ended(self, ended: TurnEnded) -> None:
        turn, self.turn = self.turn, None
        received_at = time.monotonic()
        if ended.too_long:
            self._cancel(turn)
            await self._discard(turn, "too_long")
            return
        eager = turn.eager if turn.eager_voiced == ended.voiced else None
        # Finished in its own task: the microphone keeps being heard meanwhile (the next turn may begin).
        self._spawn(self._finish(turn, ended, eager, received_at))

    async def _finish(self, turn: Turn, ended: TurnEnded, eager: asyncio.Task | None, received_at: float) -> None:
        await self.host.send_event(protocol.ListenTurn(turn.id, "ended"))
        if turn.partial is not None and turn.partial is not eager:
            turn.partial.cancel()
        try:
            transcript: Transcript = await (eager or transcription().transcribe(ended.audio, self.language))
        except (STTError, asyncio.CancelledError) as exc:
            if self.closed:
                return
            logger.info("A hands-free turn could not be transcribed: %s", exc)
            await self._discard(turn, "failed")
            return
        heard = classify(transcript.text, self._said(turn))
        if heard is Heard.NOTHING:
            await self._discard(turn, "noise")
        elif heard in (Heard.ECHO, Heard.BACKCHANNEL):
            await self._discard(turn, heard.value)
        elif turn.ducked is not None and only_commands(transcript.text):
            # "Stop." means stop: answering it would start the assistant talking again.
            await self._barge_in(turn)
            await self._discard(turn, "command")
        else:
            if turn.ducked is not None:
                await self._barge_in(turn)
            try:
                text = protocol.storable_text(transcript.text, limit=settings.VOICE_MAX_QUERY_CHARS)
            except protocol.ProtocolError:
                await self._discard(turn, "too_long")
                return
            await self.host.send_event(protocol.Transcribed(text, final=True, turn_id=turn.id))
            duration_ms = round(1000 * audio.pcm_duration(len(ended.audio), SAMPLE_RATE))
            recording = QueryRecording(audio.wav_bytes(ended.audio, SAMPLE_RATE), duration_ms)
            try:
                await self.host.ask_spoken(text, turn.id, recording, received_at)
            except VoiceError as exc:
                await self.host.send_event(protocol.ErrorEvent.of(exc))

    def _said(self, turn: Turn) -> str:
        return self.playback.said(within=time.monotonic() - turn.started + RECENT)

    async def _barge_in(self, turn: Turn) -> None:
        if turn.barged_in or turn.ducked is None:
            return
        turn.barged_in = True
        reply = turn.ducked
        heard_ms = reply.heard_ms(time.monotonic())
        self.playback.stopped(reply.message_id)
        await self.host.interrupt_reply(reply.message_id, heard_ms)

    async def _discard(self, turn: Turn, reason: str) -> None:
        await self._unduck(turn)
        await self.host.send_event(protocol.ListenTurn(turn.id, "discarded", reason))

    async def _unduck(self, turn: Turn) -> None:
        if turn.ducked is not None and not turn.barged_in:
            await self.host.publish_event(protocol.PlaybackDuck(turn.ducked.message_id, False))

    def _cancel(self, turn: Turn) -> None:
        for task in (turn.partial, turn.eager):
            if task is not None:
                task.cancel()

    def _spawn(self, work: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved: a speculative transcript nobody needed may have failed
        if error is not None and not isinstance(error, STTError):
            logger.error("Hands-free work failed", exc_info=error)

    def cancel(self) -> None:
        """The socket is gone: drop everything at once."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()


def prepare() -> None:
    vad.prepare()
    transcription()


def only_commands(text: str) -> bool:
    """Whether ``text`` asks only to stop ("Stop.", "No, wait."): no words of a request of its own."""
    heard = words(text)
    return any(word in COMMANDS for word in heard) and all(word in COMMANDS or word in FUNCTION_WORDS for word in heard)
