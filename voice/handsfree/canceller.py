"""Echo cancellation: the assistant's own voice taken out of the open microphone before the turn detector.

With a speaker instead of a headset the page's playback comes back into its
microphone. Browsers cancel it only for their own media elements and
devices, and not at all for many external speakers and Bluetooth or USB
devices (issue 28 measured fragments of replies stored as questions). The
server knows every sample it sent the page (the reference) and, from the
playback estimate (``playback.Playback.sounding``), when each sounds.
WebRTC's AEC3 (``pywebrtc-audio``) subtracts it: an adaptive filter that
finds the device's delay itself (up to about 400 ms), with double-talk
detection so that a person talking over the reply still gets through.
docs/handsfree.md has the measurements of the cancellers tried.

Clocks: the page says where its playback is (``playback.position``: how much
of the reply had played when its microphone had sent so many samples), which
places the microphone's samples on the playback estimate's clock (``anchor``),
with no margin (``LEAD``): the page reports right after a frame leaves its
microphone, so little is held back, and its speakers' latency puts the echo
after the reference anyway. Without
it (an old page, a lost message; said once in the logs) the samples are
mapped to this process's clock by their
arrival, ``start + n / 16000``, where ``start`` is the earliest plausible start of
the stream over the last half minute (audio never arrives before it was
captured, so the smallest ``arrival - n / 16000`` has the least network delay
in it; a piece much later than that starts the estimate again: the page sent
nothing for a while). Both estimates err on the same side: a sample is never
captured after its estimated time, and the page never plays a chunk before
the server forwards it. So the reference reaches the canceller no later than
its echo, which is the one way the canceller can follow (it finds the delay,
up to about 400 ms: the device's, the network's and the page's buffers).

The work runs on the VAD thread, one 10 ms frame at a time (about 1 % of a
core per open microphone); ``reference`` runs on the event loop, where the
playback estimate lives.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from ..stt import SAMPLE_RATE
from .playback import Playback

logger = logging.getLogger(__name__)

FRAME = SAMPLE_RATE // 100  # 10 ms: AEC3's frame
# The earliest start of the stream is looked for over this many recent pieces (about half a minute).
START_WINDOW = 300
# Audio arriving this much later than its place in the stream says: a gap (the page sent nothing meanwhile).
GAP = 0.5
# How much earlier than the page's position says the reference is placed. None: AEC3 follows a reference best
# when it is as close to its echo as can be. In the simulated pages (voice/tests/models/test_handsfree.py) a
# reference 30 ms early let a fragment through in a room with the speaker 70 cm from the microphone, and 100 ms
# early at -9 dB 80 ms late. A real page reports right after a frame leaves its microphone (little is held back)
# and its sound leaves the speakers later than its clock says (output latency): the echo comes after it anyway.
LEAD = 0.0
# Seconds of a reply's sound without a position from the page before the fallback is logged.
UNPLACED = 2.0


# Whether the microphone hears the replies at all (``EchoPath``): measured on our voice through a simulated
# room (docs/handsfree.md, §6), the peak normalised correlation of half a second of microphone with the
# reference up to half a second before it is 0.63-1.0 with a speaker (echo at -9 to -30 dB), 0.2-0.6 for a
# headset leaking at -45 dB, and at most 0.15 with no echo, a person talking included.
ANALYSED = SAMPLE_RATE // 2  # samples of microphone per look
REACH = SAMPLE_RATE // 2  # the echo comes at most this late after its reference
ECHO_AT = 0.4  # a look that finds the reply in the microphone: cancel from now on ...
SOFTER = 10 ** (-3 / 20)  # ... if it is quieter than the reply (an echo is; a person in the same voice may not be)
ALL_ECHO = 0.7  # ... or at any level if it is mostly the reply (half its energy or more; a person: at most 0.15)
STEADY = 0.4  # ... and each half of the look follows the reply at least this well, relative to the whole,
SAME_DELAY = SAMPLE_RATE * 3 // 1000  # ... at the same delay (within 3 ms)
NO_ECHO_BELOW = 0.2  # a look that finds nothing of it, in a microphone
QUIET = 10 ** (-12 / 20)  # ... this much quieter than the reply: a person talking over it blurs the correlation
NO_ECHO_LOOKS = 2  # this many in a row (1 s of a reply sounding unheard): a headset, leave the microphone be
REFERENCE_RMS = 10 ** (-45 / 20)  # a reference quieter than this says nothing either way


class CancellerFailed(Exception):
    """The echo canceller could not run: this socket goes on without it."""


class EchoPath:
    """Whether the replies come back into the microphone (a speaker) or not (a headset), and so which sound to use.

    AEC3 starts each reply cautiously when it has no echo to cancel: with a headset it lowered the first half
    second of every reply by 30 dB and the person's voice by 9 dB throughout, and lost a person who talked
    over the first second of a reply (§6). So the canceller's output is used while an echo path is heard, and
    the microphone's own while the replies sound without coming back.

    Until the first look at a reply says which (``heard`` is None), the microphone's sound waits for it, at
    most half a second once, when the first reply starts: let through, the first half second of a speaker's
    echo reached the turn detector in every simulated room; cancelled, a headset lost the person's first
    words. A look that finds the reply in a microphone quieter than it is a speaker; two looks at a reply
    sounding unheard in a quiet microphone (1 s) are a headset. Until then each look decides its own half
    second: a microphone louder than the reply and not mostly the reply is a person talking (their sound as
    it came, the reply's echo under it included), anything else unclear is cancelled.
    """

    def __init__(self) -> None:
        self.heard: bool | None = None
        self._raw = np.zeros(0, dtype=np.int16)  # the microphone: the look being gathered, and what came after it
        self._far = np.zeros(REACH, dtype=np.int16)  # the reference: REACH samples more, before it
        self._cancelled = np.zeros(0, dtype=np.int16)  # the canceller's output for ``_raw``
        self._passed = 0  # of them, already passed on
        self._unheard = 0

    def pass_on(self, mic: np.ndarray, far: np.ndarray, cancelled: np.ndarray) -> np.ndarray:
        """The next samples of the microphone, the reference at the same moments and AEC3's output (PCM16).

        Returns what the turn detector should hear now, in order: some of it may wait for the next look.
        """
        self._raw = np.concatenate((self._raw, mic))
        self._far = np.concatenate((self._far, far))
        self._cancelled = np.concatenate((self._cancelled, cancelled))
        out = []
        while len(self._raw) >= ANALYSED:
            cancel = self._look(self._raw[:ANALYSED] / 32768, self._far[: REACH + ANALYSED] / 32768)
            if self._passed < ANALYSED:
                out.append((self._cancelled if cancel else self._raw)[self._passed : ANALYSED])
            self._passed = max(0, self._passed - ANALYSED)
            self._raw, self._cancelled = self._raw[ANALYSED:], self._cancelled[ANALYSED:]
            self._far = self._far[ANALYSED:]
        if self.heard is not None or not self._far.any():  # known, or no reply sounded to come back
            source = self._cancelled if self.heard else self._raw
            out.append(source[self._passed :])
            self._passed = len(source)
        return np.concatenate(out) if out else self._raw[:0]

    def _look(self, mic: np.ndarray, far: np.ndarray) -> bool:
        """Learn from half a second of microphone; whether to use the canceller's output for it."""
        if _rms(far) < REFERENCE_RMS:
            return bool(self.heard)  # no reply sounding, nor in the room still: nothing to learn or to cancel
        mic_rms, far_rms = _rms(mic), _rms(far[REACH:])
        if far_rms < REFERENCE_RMS:
            return self.heard is not False  # a reply's last echo, perhaps
        correlations = _correlations(mic, far)
        lag = int(np.argmax(correlations))
        peak = float(correlations[lag])
        softer = mic_rms < SOFTER * far_rms
        if ((peak >= ECHO_AT and softer) or peak >= ALL_ECHO) and _steady(mic, far, lag, peak):
            self._unheard = 0
            if self.heard is False:
                logger.info("The microphone hears the replies again (a speaker): cancelling their echo")
            self.heard = True
        elif peak < NO_ECHO_BELOW and mic_rms < QUIET * far_rms:
            self._unheard += 1
            if self.heard is not False and self._unheard >= NO_ECHO_LOOKS:
                self.heard = False
                logger.info("The microphone does not hear the replies (a headset): leaving it be")
            if self.heard is None:
                return False  # nothing of the reply in it to take out
        if self.heard is None:
            return softer and peak >= NO_ECHO_BELOW  # louder than the reply: someone talking, keep their voice
        return self.heard


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def _correlations(mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """The normalised correlation of ``mic`` with ``far`` (REACH samples longer, before it) at each delay."""
    size = 1 << (len(far) + len(mic)).bit_length()
    # correlation[j] = sum(mic[i] * far[i + j]): the echo REACH - j samples after its reference
    correlation = np.fft.irfft(np.fft.rfft(far, size) * np.conj(np.fft.rfft(mic, size)), size)[: REACH + 1]
    energy = np.concatenate(([0.0], np.cumsum(far**2)))
    far_norms = np.sqrt(energy[len(mic) : len(mic) + REACH + 1] - energy[: REACH + 1])
    return np.abs(correlation) / (np.sqrt(np.sum(mic**2)) * far_norms + 1e-9)


def _steady(mic: np.ndarray, far: np.ndarray, lag: int, peak: float) -> bool:
    """Whether each half of the look follows the reply at the whole's delay, as an echo does all along.

    A person whose voice resembles the reply's (in its own Piper voice, half a second reached 0.48) does so
    only by chance, in one half: the other, at that delay, came to 0.00-0.02; an echo's halves, 0.24 or more
    (docs/handsfree.md §6). A half with no reply sounding says nothing.
    """
    half = len(mic) // 2
    for at in (0, half):
        reference = far[at : at + REACH + half]
        if _rms(reference) < REFERENCE_RMS:
            continue
        nearby = _correlations(mic[at : at + half], reference)[max(0, lag - SAME_DELAY) : lag + SAME_DELAY + 1]
        if nearby.max() < STEADY * peak:
            return False
    return True


class EchoCanceller:
    """One open microphone's echo canceller (not thread-safe: one socket, one thread at a time)."""

    def __init__(self, playback: Playback) -> None:
        try:
            from pywebrtc_audio import EchoCanceller as Aec3
        except ImportError as exc:
            raise CancellerFailed(f"pywebrtc-audio is not installed: {exc}") from exc
        self.playback = playback
        self._aec = Aec3(sample_rate=SAMPLE_RATE, num_channels=1)
        self._samples = 0  # of the microphone so far
        self._starts: deque[float] = deque(maxlen=START_WINDOW)
        self._mic = np.zeros(0, dtype=np.int16)  # less than a frame, kept for the next piece
        self._far = np.zeros(0, dtype=np.int16)
        self._anchored: float | None = None  # where the page's position puts the microphone's first sample
        self._unplaced = 0  # samples of reference sound since the stream began, while the page placed none
        self.echo_path = EchoPath()

    @property
    def placed_by_page(self) -> bool:
        return self._anchored is not None

    def anchor(self, mic_samples: int, at: float) -> bool:
        """The page's microphone had sent ``mic_samples`` when the playback estimate's ``at`` sounded.

        Refused (False) for a count the microphone has not sent: it would put the reply after its echo.
        """
        if mic_samples > self._samples + GAP * SAMPLE_RATE:
            return False
        self._anchored = at - mic_samples / SAMPLE_RATE - LEAD
        return True

    def reference(self, pcm: bytes, arrived: float) -> np.ndarray:
        """What the replies were sounding while ``pcm`` (the next piece of the microphone) was captured.

        On the event loop: the playback estimate changes there.
        """
        count = len(pcm) // 2
        first, self._samples = self._samples, self._samples + count
        start = arrived - self._samples / SAMPLE_RATE
        if self._starts and start - min(self._starts) > GAP:
            self._starts.clear()  # the microphone sent nothing for a while: its samples start later from here
        self._starts.append(start)
        start = min(self._starts) if self._anchored is None else self._anchored
        far = self.playback.sounding(start + first / SAMPLE_RATE, count)
        if self._anchored is None and self._unplaced <= UNPLACED * SAMPLE_RATE and far.any():
            self._unplaced += count
            if self._unplaced > UNPLACED * SAMPLE_RATE:
                logger.info("This page sends no playback position: the echo canceller goes by arrival times")
        return far

    def skipped(self, pcm: bytes) -> None:
        """``pcm`` was captured but dropped (it came too fast): the stream's clock counts it all the same."""
        self._samples += len(pcm) // 2

    def clean(self, pcm: bytes, far: np.ndarray) -> bytes:
        """``pcm`` without the echo of ``far`` (from ``reference``), 10 ms frames at a time; on the VAD thread.

        What is left of a frame waits for the next piece, so the output trails by less than 10 ms. While
        the microphone does not hear the replies (``EchoPath``), it is returned as it came (AEC3 still
        follows it, ready for a speaker); until the first look at a reply, it waits for that look.
        """
        mic = np.concatenate((self._mic, np.frombuffer(pcm, dtype="<i2")))
        far = np.concatenate((self._far, far))
        whole = len(mic) - len(mic) % FRAME
        self._mic, self._far = mic[whole:], far[whole:]
        try:
            out = [self._aec.process(mic[at : at + FRAME], far[at : at + FRAME]) for at in range(0, whole, FRAME)]
        except Exception as exc:  # a native library: whatever it raises, this socket goes on without it
            raise CancellerFailed(repr(exc)) from exc
        if not out:
            return b""
        cancelled = np.concatenate(out).astype(np.int16)
        return self.echo_path.pass_on(mic[:whole], far[:whole], cancelled).astype("<i2").tobytes()
