"""One listening socket in hands-free mode: from an open microphone to stored queries.

``HandsFreeSession.feed`` takes the microphone's PCM as it arrives, no faster
than real time (a client pushing audio faster would take the VAD thread from
everyone). The turn detector (``detector``) runs in one small thread pool
shared by every socket of the process (about 0.1 ms of CPU per 32 ms window:
the event loop never runs the model). For each turn:

- **onset**: 64 ms of speech while the assistant is audible pause that reply
  in every tab; if it fades before it is a turn, it goes on.
- **start**: the tab is told (``listen.turn`` speaking); the turn counts
  against VOICE_SPEECH_RATE_LIMIT, as a push-to-talk utterance does.
- **while it lasts**: a partial transcript every VOICE_HANDSFREE_PARTIAL_SECONDS,
  only while words come and no other transcription waits (finals first).
  While a reply is paused, each partial is judged: a command or words of the
  person's own stop the reply (barge-in), stored ``interrupted``.
- **quiet**: at VOICE_HANDSFREE_EAGER_MS of silence the final transcription
  starts (or the latest partial is kept, if it heard the last word); speech
  resuming cancels it. Its words are judged (``completeness``): finished ones
  end the turn sooner, broken-off ones later; and, unless a reply is playing,
  their reply is begun (``voice.drafts``), used if the turn ends with them.
- **end**: nothing is stored for noise, echo, an acknowledgement or a bare
  "stop"; otherwise the words are stored with the recording and answered, as
  a spoken query is (``client_id`` = the turn's id), in the order they were
  said. Whatever fails, the tab is told in a plain sentence and the paused
  reply goes on.

What the voice does to the playing reply is decided by ``bargein.BargeIn``;
this module carries out its answers. The socket (``voice.consumers``) is the
``Host``: it owns sending, the conversation's group, the rate limits and the
turns.
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

from .. import protocol
from ..drafts import Draft
from ..exceptions import BadAudio, STTError, UtteranceTooLong, VoiceError
from ..metrics import ECHO_CANCELLER_FAILURES, TURN_VERDICTS
from ..stt import SAMPLE_RATE, Transcript
from ..stt.service import transcription
from . import completeness, vad
from .bargein import Action, Ask, BargeIn, Discard, Hold, Pause, Resume, Stop
from .canceller import CancellerFailed, EchoCanceller
from .detector import (
    EndOfTurn,
    OnsetFaded,
    SpeechGoesOn,
    SpeechOnset,
    SpeechQuiet,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
)
from .playback import Playback

logger = logging.getLogger(__name__)

# Voice activity for every listening socket of this process: one thread is plenty (see above).
_vad_threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice-vad")
INTERNAL_ERROR = protocol.ErrorEvent("internal_error", "Something went wrong on the server.")


class Host(Protocol):
    """What a session needs from its socket."""

    async def send_event(self, event: protocol.Event) -> None:
        """To this tab."""

    async def publish_event(self, event: protocol.Event) -> None:
        """To every tab of the conversation."""

    async def count_turn(self) -> None:
        """One more utterance of this user; ProtocolError past the rate limit."""

    async def ask_spoken(
        self, text: str, client_id: str, pcm: bytes, received_at: float, *, turn_id: str, draft: Draft | None = None
    ) -> None:
        """Store ``text`` as a spoken query (recorded in ``pcm``) and answer it; VoiceError if it was refused.

        ``draft``: the reply begun from these words (``draft_reply``), taken if it fits.
        """

    def draft_reply(self, text: str) -> Draft | None:
        """Begin the reply to ``text`` before the turn is over (None: not drafted)."""

    async def interrupt_reply(self, message_id: int, heard_ms: int) -> None:
        """Stop reply ``message_id`` (barge-in), heard for ``heard_ms``."""

    async def listening_ended(self, reason: protocol.ListenOff) -> None:
        """The session stopped itself (``idle``)."""


@dataclass
class Turn:
    id: str = field(default_factory=lambda: f"h-{secrets.token_hex(6)}")
    refused: bool = False  # past the rate limit: heard to its end, but nothing is done with it
    hold: Hold | None = None  # what it holds of the playing reply (``bargein``)
    partial: asyncio.Task | None = None  # the latest partial transcription
    partial_due: SpeechGoesOn | None = None  # the turn so far, waiting for the transcriber to be free
    partial_voiced: int = -1  # of the audio it transcribes: bytes up to the last voiced window
    eager: asyncio.Task | None = None  # the speculative final transcription
    eager_voiced: int = -1
    judging: asyncio.Task | None = None  # how finished the eager transcript's words sound
    drafting: asyncio.Task | None = None  # the reply begun from the eager transcript (``voice.drafts``)...
    draft: Draft | None = None  # ...once its words are known


class HandsFreeSession:
    def __init__(
        self,
        host: Host,
        playback: Playback,
        *,
        language: str | None = None,
        detector: EndOfTurn | None = None,
        cancel_echo: bool | None = None,
        owner: str | None = None,
    ) -> None:
        self.host = host
        self.owner = owner  # the account its transcriptions count against (VOICE_STT_USER_JOBS)
        self.playback = playback
        self.barge_in = BargeIn(playback)
        self.language = language
        self.detector = detector or silero_turns()
        self._canceller_wanted = settings.VOICE_HANDSFREE_ECHO_CANCELLER if cancel_echo is None else cancel_echo
        self.canceller = self._canceller(self._canceller_wanted)
        self.turn: Turn | None = None
        self._canceller_news = False  # it stopped working: the tab is still to hear of it
        self.last_speech = 0.0  # seconds of the stream: a silent microphone turns the mode off
        self.closed = False
        self._began = time.monotonic()
        self._too_fast_told = False
        self._in_order = asyncio.Lock()  # turns are asked in the order they were said
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Load the VAD, and start the transcription processes: the first words should not wait for them."""
        await asyncio.get_running_loop().run_in_executor(_vad_threads, vad.prepare)
        await asyncio.to_thread(transcription)
        if self._judges_words:
            await asyncio.to_thread(completeness.prepare)

    async def feed(self, pcm: bytes) -> None:
        """More of the microphone (PCM16, 16 kHz, mono)."""
        if self.closed:
            return
        if len(pcm) % 2:
            raise BadAudio("PCM16 frames must hold whole samples (an even number of bytes).")
        ahead = settings.VOICE_HANDSFREE_AHEAD_SECONDS
        # Time the microphone sent nothing is no credit: after a quiet hour, not an hour of audio at once.
        self._began = max(self._began, time.monotonic() - self.detector.seconds)
        if self.detector.seconds + len(pcm) / (2 * SAMPLE_RATE) > time.monotonic() - self._began + ahead:
            if self.canceller is not None:
                self.canceller.skipped(pcm)  # captured all the same: the samples after it come later
            if not self._too_fast_told:
                self._too_fast_told = True
                raise protocol.ProtocolError(
                    "audio_too_fast", "The microphone's audio arrives faster than it is spoken; some was dropped."
                )
            return
        far = self.canceller.reference(pcm, time.monotonic()) if self.canceller is not None else None
        events = await asyncio.get_running_loop().run_in_executor(_vad_threads, self._hear, pcm, far)
        if self._canceller_news:
            self._canceller_news = False
            await self.host.send_event(self.state())
        await self._handle(events)
        if self.turn is not None:
            self.last_speech = self.detector.seconds
            self._maybe_partial()
        elif self.detector.seconds - self.last_speech > settings.VOICE_HANDSFREE_IDLE_MINUTES * 60:
            await self.close()
            await self.host.listening_ended(protocol.ListenOff.IDLE)

    async def _handle(self, events: list) -> None:
        for event in events:
            if isinstance(event, SpeechOnset):
                await self._carry_out(self.barge_in.speech_onset())
            elif isinstance(event, OnsetFaded):
                await self._carry_out(self.barge_in.onset_faded())
            elif isinstance(event, SpeechStarted):
                await self._started()
            elif isinstance(event, SpeechGoesOn):
                self._partial(event)
            elif isinstance(event, SpeechQuiet):
                self._quiet(event)
            elif isinstance(event, SpeechResumed):
                self._resumed()
            elif isinstance(event, TurnEnded):
                await self._ended(event)

    @property
    def canceller_lost(self) -> bool:
        """An echo canceller was wanted and could not run: this socket listens without it."""
        return self._canceller_wanted and self.canceller is None

    def state(self) -> protocol.ListenState:
        """What the tab is told of this session: listening, and what it works without."""
        note = protocol.ListenNote.NO_ECHO_CANCELLER if self.canceller_lost else ""
        return protocol.ListenState(protocol.Listening.LISTENING, note)

    def position(self, message_id: int, played_ms: int, mic_samples: int) -> None:
        """The page's playback position (``playback.position``): the echo canceller lines up by it."""
        if self.canceller is None:
            return
        at = self.playback.time_of(message_id, played_ms)
        if at is not None:
            self.canceller.anchor(mic_samples, at)

    async def close(self) -> None:
        """Stop listening. A turn not yet ended is dropped; one that ended is still stored and answered."""
        self.closed = True
        await self._carry_out(self.barge_in.onset_faded())
        turn, self.turn = self.turn, None
        if turn is not None:
            self._cancel(turn)
            await self._carry_out(self.barge_in.let_go(turn.hold))
        self.detector.reset()

    async def cancel(self) -> None:
        """The user signed out: drop everything at once, ended turns too."""
        await self.close()
        for task in list(self._tasks):
            task.cancel()

    # --- The microphone, on the VAD thread ----------------------------------------------
    def _canceller(self, wanted: bool) -> EchoCanceller | None:
        if not wanted:
            return None
        try:
            return EchoCanceller(self.playback)
        except CancellerFailed as exc:
            self._canceller_failed(exc)
            return None

    def _hear(self, pcm: bytes, far) -> list:
        """The moments of the turn detector in ``pcm``, the echo of ``far`` taken out first (if on)."""
        canceller = self.canceller
        if canceller is not None and far is not None:
            try:
                pcm = canceller.clean(pcm, far)
            except CancellerFailed as exc:  # bypassed for this socket: the word judge still guards
                self.canceller = None
                self._canceller_news = True
                self._canceller_failed(exc)
        return self.detector.feed(pcm)

    @staticmethod
    def _canceller_failed(exc: Exception) -> None:
        ECHO_CANCELLER_FAILURES.inc()
        logger.warning("The echo canceller is off for this microphone: %s", exc)

    # --- What the voice does to the playing reply (decided by ``bargein``) ---------------
    async def _carry_out(self, actions: list[Action], turn: Turn | None = None, ask=None) -> None:
        """Do what the barge-in policy answered; ``ask`` stores and answers ``turn``'s words."""
        for action in actions:
            if isinstance(action, Pause | Resume):
                await self.host.publish_event(protocol.PlaybackDuck(action.message_id, isinstance(action, Pause)))
            elif isinstance(action, Stop):
                await self.host.interrupt_reply(action.message_id, action.heard_ms)
            elif isinstance(action, Discard):
                await self.host.send_event(protocol.ListenTurn(turn.id, protocol.TurnPhase.DISCARDED, action.reason))
            elif isinstance(action, Ask):
                await ask()

    # --- A turn -----------------------------------------------------------------
    async def _started(self) -> None:
        turn = self.turn = Turn()
        try:
            await self.host.count_turn()
        except protocol.ProtocolError as exc:
            turn.refused = True
            await self._carry_out(self.barge_in.turn_refused())
            await self.host.send_event(protocol.ErrorEvent.of(exc))
            return
        await self.host.send_event(protocol.ListenTurn(turn.id, protocol.TurnPhase.SPEAKING))
        turn.hold, actions = self.barge_in.turn_started()
        await self._carry_out(actions, turn)

    def _partial(self, going_on: SpeechGoesOn) -> None:
        if not self.turn.refused:
            self.turn.partial_due = going_on  # the newest replaces one still waiting

    def _maybe_partial(self) -> None:
        """Start the partial that is due, unless another pass runs or a final one waits (finals first)."""
        turn = self.turn
        going_on = turn.partial_due
        if going_on is None or (turn.partial is not None and not turn.partial.done()) or transcription().waiting:
            return
        turn.partial_due = None
        turn.partial_voiced = going_on.voiced
        turn.partial = self._spawn(transcription().transcribe(going_on.audio, self.language, self.owner))
        self._spawn(self._show_partial(turn, turn.partial))

    async def _show_partial(self, turn: Turn, partial: asyncio.Task) -> None:
        try:
            transcript = await partial
        except STTError as exc:
            logger.info("A hands-free partial transcript failed: %s", exc)
            return
        if turn is not self.turn or not transcript.text:
            return
        await self.host.send_event(protocol.Transcribed(transcript.text, final=False, turn_id=turn.id))
        await self._carry_out(self.barge_in.partial(turn.hold, transcript.text), turn)

    def _quiet(self, quiet: SpeechQuiet) -> None:
        turn = self.turn
        if turn.refused:
            return
        turn.eager_voiced = quiet.voiced
        turn.partial_due = None  # the final pass starts now: a partial started in a pause would hold it up
        if turn.partial is not None and turn.partial_voiced == turn.eager_voiced:
            turn.eager = turn.partial  # it heard every word already: it is the final transcription
        else:
            turn.eager = self._spawn(transcription().transcribe(quiet.audio, self.language, self.owner))
        # Not over a reply (playing, or paused for this turn): there the words may be its echo, and a turn cut
        # sooner is a shorter fragment for the word judge.
        if self._judges_words and self.playback.speaking() is None:
            turn.judging = self._spawn(self._judge(turn, turn.eager, quiet))
        # Over a reply, the words may be its echo, and the history waits for what was heard of it.
        if Draft.wanted() and self.playback.speaking() is None:
            turn.drafting = self._spawn(self._draft(turn, turn.eager))

    @property
    def _judges_words(self) -> bool:
        return bool(settings.VOICE_HANDSFREE_COMPLETE_SILENCE_MS)

    async def _judge(self, turn: Turn, eager: asyncio.Task, quiet: SpeechQuiet) -> None:
        """Tell the rule how finished the words before this silence sound, once they are transcribed."""
        try:
            transcript = await asyncio.shield(eager)  # the turn's end still needs it, whatever happens here
            judgement = await completeness.judgement(transcript.text)
        except STTError:
            return  # the turn's end transcribes it again
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise
            return  # the eager pass was cancelled: the person spoke again
        except Exception:  # a judge that fails leaves the default silence, never a failed turn
            logger.exception("A turn's words could not be judged")
            return
        if judgement is None or turn is not self.turn:
            return
        TURN_VERDICTS.labels(judgement.verdict.value).inc()
        events = await asyncio.get_running_loop().run_in_executor(
            _vad_threads, self.detector.judged, quiet, judgement.verdict
        )
        await self._handle(events)

    async def _draft(self, turn: Turn, eager: asyncio.Task) -> None:
        """Begin the reply to the words before this silence, as soon as they are transcribed."""
        try:
            transcript = await asyncio.shield(eager)  # the turn's end still needs it, whatever happens here
        except STTError:
            return
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise
            return  # the eager pass was cancelled: the person spoke again
        if turn.eager is eager and transcript.text.strip():
            turn.draft = self.host.draft_reply(transcript.text)

    def _resumed(self) -> None:
        turn = self.turn
        if turn.eager is not None and turn.eager is not turn.partial:
            turn.eager.cancel()  # not started yet: never starts; a newer one comes at the next quiet
        for task in (turn.judging, turn.drafting):
            if task is not None:
                task.cancel()
        if turn.draft is not None:
            turn.draft.abandon()  # the person goes on: the words it answers are not the turn's
        turn.eager, turn.eager_voiced, turn.judging, turn.drafting, turn.draft = None, -1, None, None, None

    async def _ended(self, ended: TurnEnded) -> None:
        turn, self.turn = self.turn, None
        if turn.refused:
            return
        eager = turn.eager if turn.eager_voiced == ended.voiced else None
        if turn.partial is not None and turn.partial is not eager:
            turn.partial.cancel()
        if ended.too_long:
            self._cancel(turn)
            too_long = UtteranceTooLong(settings.VOICE_STT_MAX_SECONDS)
            await self._give_up(turn, protocol.DiscardReason.TOO_LONG, protocol.ErrorEvent.of(too_long))
            return
        # Finished in its own task: the microphone keeps being heard meanwhile (the next turn may begin).
        self._spawn(self._finish(turn, ended, eager, time.monotonic()))

    async def _finish(self, turn: Turn, ended: TurnEnded, eager: asyncio.Task | None, received_at: float) -> None:
        try:
            async with self._in_order:
                try:
                    await self._conclude(turn, ended, eager, received_at)
                except Exception:
                    logger.exception("A hands-free turn failed")
                    await self._give_up(turn, protocol.DiscardReason.FAILED, INTERNAL_ERROR)
                finally:
                    await self._carry_out(self.barge_in.let_go(turn.hold), turn)
        finally:
            if turn.draft is not None:
                turn.draft.abandon()  # unless the reply took it; also when the socket closed while it waited

    async def _conclude(self, turn: Turn, ended: TurnEnded, eager: asyncio.Task | None, received_at: float) -> None:
        await self.host.send_event(protocol.ListenTurn(turn.id, protocol.TurnPhase.ENDED))
        try:
            transcript = await self._final_transcript(ended, eager)
        except STTError as exc:
            logger.info("A hands-free turn could not be transcribed: %s", exc)
            await self._give_up(turn, protocol.DiscardReason.FAILED, protocol.ErrorEvent.of(exc))
            return
        if eager is not None and turn.drafting is not None:
            await asyncio.wait([turn.drafting])  # its words are known now: at most a step of the loop
        draft = turn.draft if eager is not None else None

        async def ask() -> None:
            try:
                await self.host.ask_spoken(
                    transcript.text, turn.id, ended.audio, received_at, turn_id=turn.id, draft=draft
                )
            except VoiceError as exc:  # refused (too many messages, say): the page offers the words again
                await self.host.send_event(protocol.ErrorEvent.of(exc))

        await self._carry_out(self.barge_in.final(turn.hold, transcript.text), turn, ask)

    async def _final_transcript(self, ended: TurnEnded, eager: asyncio.Task | None) -> Transcript:
        if eager is not None:
            try:
                return await eager
            except STTError as exc:
                logger.info("A speculative transcription failed (%s): transcribing the turn again", exc)
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # this turn is being dropped, not just its speculative pass
        return await transcription().transcribe(ended.audio, self.language, self.owner)

    async def _give_up(
        self, turn: Turn, reason: protocol.DiscardReason, error: protocol.ErrorEvent | None = None
    ) -> None:
        """Nothing is stored for this turn: the tab is told why (in words, for a failure), the reply comes back."""
        await self._carry_out(self.barge_in.give_up(turn.hold, reason), turn)
        if error is not None:
            await self.host.send_event(error)

    def _cancel(self, turn: Turn) -> None:
        for task in (turn.partial, turn.eager, turn.judging, turn.drafting):
            if task is not None:
                task.cancel()
        if turn.draft is not None:
            turn.draft.abandon()

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


def silero_turns() -> TurnDetector:
    """The default end-of-turn rule: the settings' silences over Silero's voice activity."""
    stream = vad.SileroStream()
    return TurnDetector(stream.probability, on_gate=stream.reset)
