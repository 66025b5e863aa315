"""The end-of-turn rule: when a person on an open microphone starts and stops talking.

Measured on the project's voice (docs/handsfree.md, §1-§3): Silero never
passed 0.16 on noise, clicks, coughs or beeps, and speech reaches 0.99. So a
turn starts after VOICE_HANDSFREE_START_MS of windows above 0.5 and ends after
VOICE_HANDSFREE_END_SILENCE_MS of silence, counted from the first window
below 0.35 (a window above 0.5 starts the count again; those in between keep
it going). 800 ms never cut a pause of 700 ms or less; Smart Turn v3 cut more
than silence alone and was not kept. At VOICE_HANDSFREE_EAGER_MS of silence
the detector says so (``SpeechQuiet``), so that the transcript can be made
while the rule still waits: it is ready when the turn ends. The session
then has the words judged (``completeness``) and tells the rule
(``judged``): finished words end the turn after
VOICE_HANDSFREE_COMPLETE_SILENCE_MS, words that break off wait
VOICE_HANDSFREE_UNFINISHED_SILENCE_MS.

The session (``voice.handsfree.session``) sees a rule only through
``EndOfTurn``: moments, each with the audio it needs. Another rule is one
new module with the same four members.

Pure and blocking: the probability function is given (``vad.SileroStream``
in production), and the caller runs ``feed`` off the event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from django.conf import settings

from .completeness import Verdict
from .vad import WINDOW

SAMPLE_RATE = 16000
WINDOW_MS = WINDOW * 1000 // SAMPLE_RATE  # 32
WINDOW_BYTES = WINDOW * 2


@dataclass(frozen=True)
class TurnOptions:
    start_ms: int = 200
    onset_ms: int = 64  # speech this long may be someone talking over the assistant: pause it already
    end_silence_ms: int = 800
    complete_silence_ms: int = 400  # ... when the words sound finished (0: the words are never judged)
    unfinished_silence_ms: int = 1200  # ... when they break off
    eager_ms: int = 200
    partial_ms: int = 1000  # while the person speaks, the turn so far this often (a partial transcript); 0: never
    on: float = 0.5
    off: float = 0.35
    preroll_ms: int = 320  # kept before the start: the first syllable is quieter than the rest
    tail_ms: int = 256  # kept after the last voiced window
    gate_rms: float = 0.001  # -60 dBFS: quieter windows are silence without asking the model
    max_seconds: float = 60.0

    @classmethod
    def from_settings(cls, **overrides: object) -> TurnOptions:
        options = cls(
            start_ms=settings.VOICE_HANDSFREE_START_MS,
            end_silence_ms=settings.VOICE_HANDSFREE_END_SILENCE_MS,
            complete_silence_ms=settings.VOICE_HANDSFREE_COMPLETE_SILENCE_MS,
            unfinished_silence_ms=settings.VOICE_HANDSFREE_UNFINISHED_SILENCE_MS,
            eager_ms=settings.VOICE_HANDSFREE_EAGER_MS,
            partial_ms=round(settings.VOICE_HANDSFREE_PARTIAL_SECONDS * 1000),
            max_seconds=settings.VOICE_STT_MAX_SECONDS,
        )
        return replace(options, **overrides)


@dataclass(frozen=True)
class Moment:
    at: float  # seconds of stream when the rule fired


class SpeechOnset(Moment):
    """Speech for ``onset_ms``: perhaps a turn (``SpeechStarted`` follows), perhaps a cough (``OnsetFaded``)."""


class OnsetFaded(Moment):
    """The onset stopped before it was a turn."""


class SpeechStarted(Moment):
    """Speech for ``start_ms``: a turn."""


@dataclass(frozen=True)
class SpeechGoesOn(Moment):
    """``partial_ms`` more of a turn, and the person is speaking: the turn so far, for a partial transcript."""

    audio: bytes  # the turn so far, up to a little after its last voiced window
    voiced: int  # bytes of it up to its last voiced window


@dataclass(frozen=True)
class SpeechQuiet(Moment):
    """The speaker has been quiet for ``eager_ms``: the turn may be about to end. ``audio``: the turn so far."""

    audio: bytes
    voiced: int


class SpeechResumed(Moment):
    """Speech again after ``SpeechQuiet``, within the turn."""


@dataclass(frozen=True)
class TurnEnded(Moment):
    audio: bytes  # the turn, PCM16 at 16 kHz, from a little before its start to a little after its last word
    voiced: int  # bytes of it up to its last voiced window
    too_long: bool = False


Event = SpeechOnset | OnsetFaded | SpeechStarted | SpeechGoesOn | SpeechQuiet | SpeechResumed | TurnEnded


class EndOfTurn(Protocol):
    """An end-of-turn rule, as a hands-free session uses it."""

    @property
    def seconds(self) -> float:
        """Of the stream fed so far."""

    def feed(self, pcm: bytes) -> list[Event]:
        """More of the microphone (PCM16, 16 kHz, mono, any length): the moments it completes."""

    def judged(self, quiet: SpeechQuiet, verdict: Verdict) -> list[Event]:
        """The words before ``quiet`` sound ``verdict``: the moments that follow from it."""

    def reset(self) -> None:
        """Drop the turn in progress."""


class TurnDetector:
    """Feed PCM16 (any length); get the turn events it completes."""

    def __init__(
        self,
        probability: Callable[[np.ndarray], float],
        options: TurnOptions | None = None,
        on_gate: Callable[[], None] | None = None,
    ) -> None:
        self.probability = probability
        self.options = options or TurnOptions.from_settings()
        self.on_gate = on_gate  # the model's state is stale after skipped windows: reset it
        self.samples = 0  # of the stream so far
        self.windows = 0  # given to the model (the rest were gated)
        self._pending = b""
        # The windows of the speech that starts a turn, and the pre-roll before them.
        kept = (self.options.preroll_ms + self.options.start_ms) // WINDOW_MS + 1
        self._preroll: deque[bytes] = deque(maxlen=kept)
        self._voiced_run = 0
        self._onset_told = False
        self._gated = False
        self._turn: bytearray | None = None
        self._last_voiced = 0  # bytes of the turn up to its last voiced window
        self._silence: int | None = None  # windows of silence, once counting
        self._end_silence_ms = self.options.end_silence_ms  # of this silence: its words may have been judged
        self._quiet_told = False
        self._quiet_at = -1.0  # seconds of stream: the silence ``SpeechQuiet`` told of
        self._told_at = 0  # samples: when the turn so far was last handed out (``SpeechGoesOn``)

    @property
    def speaking(self) -> bool:
        return self._turn is not None

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def _turn_audio(self) -> bytes:
        """The turn so far, up to a little after its last voiced window."""
        end = min(len(self._turn), self._last_voiced + self.options.tail_ms * SAMPLE_RATE * 2 // 1000)
        return bytes(self._turn[:end])

    def feed(self, pcm: bytes) -> list[Event]:
        data = self._pending + pcm
        whole = len(data) - len(data) % WINDOW_BYTES
        self._pending = data[whole:]
        events: list[Event] = []
        for offset in range(0, whole, WINDOW_BYTES):
            event = self._window(data[offset : offset + WINDOW_BYTES])
            if event is not None:
                events.append(event)
        every = self.options.partial_ms * SAMPLE_RATE // 1000
        if self._turn is not None and self._silence is None and every and self.samples - self._told_at >= every:
            self._told_at = self.samples
            events.append(SpeechGoesOn(self.seconds, self._turn_audio(), self._last_voiced))
        return events

    def judged(self, quiet: SpeechQuiet, verdict: Verdict) -> list[Event]:
        """The words before ``quiet`` sound ``verdict``: this silence ends the turn sooner, or later.

        Ignored unless that silence still goes on (a judgement that comes after
        the person spoke again is of words that go on).
        """
        if self._turn is None or not self._quiet_told or self._quiet_at != quiet.at:
            return []
        options = self.options
        if options.complete_silence_ms:
            self._end_silence_ms = {
                Verdict.COMPLETE: min(options.complete_silence_ms, options.end_silence_ms),
                Verdict.UNFINISHED: max(options.unfinished_silence_ms, options.end_silence_ms),
            }.get(verdict, options.end_silence_ms)
        if self._silence * WINDOW_MS < self._end_silence_ms:
            return []
        ended = TurnEnded(self.seconds, self._turn_audio(), self._last_voiced)
        self.reset()
        return [ended]

    def reset(self) -> None:
        """Drop the turn in progress (the mode stopped, or the turn was refused)."""
        self._turn = None
        self._voiced_run = 0
        self._onset_told = False
        self._preroll.clear()

    def _window(self, raw: bytes) -> Event | None:
        window = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768
        self.samples += WINDOW
        if float(np.sqrt(np.mean(window**2))) < self.options.gate_rms:
            if not self._gated and self.on_gate is not None:
                self.on_gate()
            self._gated = True
            p = 0.0
        else:
            self._gated = False
            self.windows += 1
            p = self.probability(window)
        options = self.options
        if self._turn is None:
            self._preroll.append(raw)
            self._voiced_run = self._voiced_run + 1 if p > options.on else 0
            voiced_ms = self._voiced_run * WINDOW_MS
            if voiced_ms < options.start_ms:
                if voiced_ms == 0 and self._onset_told:
                    self._onset_told = False
                    return OnsetFaded(self.seconds)
                if voiced_ms >= options.onset_ms and not self._onset_told:
                    self._onset_told = True
                    return SpeechOnset(self.seconds)
                return None
            self._onset_told = False
            keep = self._voiced_run + self.options.preroll_ms // WINDOW_MS
            self._turn = bytearray(b"".join(list(self._preroll)[-keep:]))
            self._last_voiced = len(self._turn)
            self._silence, self._quiet_told = None, False
            self._end_silence_ms = options.end_silence_ms
            self._told_at = self.samples
            return SpeechStarted(self.seconds)
        self._turn += raw
        if len(self._turn) >= options.max_seconds * SAMPLE_RATE * 2:
            ended = TurnEnded(self.seconds, bytes(self._turn), len(self._turn), too_long=True)
            self.reset()
            return ended
        if p > options.on or (self._silence is None and p >= options.off):
            self._last_voiced = len(self._turn)
            resumed = self._silence is not None and self._quiet_told
            self._silence, self._quiet_told = None, False
            self._end_silence_ms = options.end_silence_ms
            return SpeechResumed(self.seconds) if resumed else None
        self._silence = (self._silence or 0) + 1
        quiet_ms = self._silence * WINDOW_MS
        if quiet_ms >= self._end_silence_ms:
            ended = TurnEnded(self.seconds, self._turn_audio(), self._last_voiced)
            self.reset()
            return ended
        if quiet_ms >= options.eager_ms and not self._quiet_told:
            self._quiet_told, self._quiet_at = True, self.seconds
            return SpeechQuiet(self.seconds, self._turn_audio(), self._last_voiced)
        return None
