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
NO_ECHO_BELOW = 0.2  # a look that finds nothing of it, in a microphone
QUIET = 10 ** (-12 / 20)  # ... this much quieter than the reply: a person talking over it blurs the correlation
NO_ECHO_LOOKS = 2  # this many in a row (1 s of a reply sounding unheard): a headset, leave the microphone be
REFERENCE_RMS = 10 ** (-45 / 20)  # a reference quieter than this says nothing either way


class CancellerFailed(Exception):
    """The echo canceller could not run: this socket goes on without it."""


class EchoPath:
    """Whether the replies come back into the microphone (a speaker) or not (a headset).

    AEC3 starts each reply cautiously when it has no echo to cancel: with a headset it lowered the first half
    second of every reply by 30 dB and the person's voice by 9 dB throughout (§6). So the canceller's output
    is used while an echo path is heard, and the microphone's own while the replies sound without coming
    back. It starts on the safe side (cancelling): the first half second of a speaker's echo would otherwise
    reach the turn detector (it did, in every simulated room). Two looks at a reply sounding unheard (1 s)
    let the microphone be; a look at a reply coming back switches the canceller's output on again. A look
    while someone talks (the microphone not much quieter than the reply) says nothing either way.
    """

    def __init__(self) -> None:
        self.heard = True
        self._mic = np.zeros(0, dtype=np.float64)
        self._far = np.zeros(REACH, dtype=np.float64)  # REACH samples more than the microphone, before it
        self._unheard = 0

    def hear(self, mic: np.ndarray, far: np.ndarray) -> None:
        """The next samples of the microphone and the reference at the same moments (PCM16 values)."""
        self._mic = np.concatenate((self._mic, mic / 32768))
        self._far = np.concatenate((self._far, far / 32768))
        while len(self._mic) >= ANALYSED:
            self._look(self._mic[:ANALYSED], self._far[: REACH + ANALYSED])
            self._mic, self._far = self._mic[ANALYSED:], self._far[ANALYSED:]

    def _look(self, mic: np.ndarray, far: np.ndarray) -> None:
        if np.sqrt(np.mean(far[REACH:] ** 2)) < REFERENCE_RMS:
            return  # no reply sounding: nothing to learn
        size = 1 << (len(far) + len(mic)).bit_length()
        # correlation[j] = sum(mic[i] * far[i + j]): the echo REACH - j samples after its reference
        correlation = np.fft.irfft(np.fft.rfft(far, size) * np.conj(np.fft.rfft(mic, size)), size)[: REACH + 1]
        energy = np.concatenate(([0.0], np.cumsum(far**2)))
        far_norms = np.sqrt(energy[ANALYSED : ANALYSED + REACH + 1] - energy[: REACH + 1])
        peak = float(np.max(np.abs(correlation) / (np.sqrt(np.sum(mic**2)) * far_norms + 1e-9)))
        mic_rms, far_rms = np.sqrt(np.mean(mic**2)), np.sqrt(np.mean(far[REACH:] ** 2))
        if peak >= ECHO_AT and mic_rms < SOFTER * far_rms:
            self._unheard = 0
            if not self.heard:
                logger.info("The microphone hears the replies again (a speaker): cancelling their echo")
            self.heard = True
        elif peak < NO_ECHO_BELOW and mic_rms < QUIET * far_rms:
            self._unheard += 1
            if self.heard and self._unheard >= NO_ECHO_LOOKS:
                self.heard = False
                logger.info("The microphone does not hear the replies (a headset): leaving it be")


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
        follows it, ready for a speaker).
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
        self.echo_path.hear(mic[:whole], far[:whole])
        return (np.concatenate(out) if self.echo_path.heard else mic[:whole]).astype("<i2").tobytes()
