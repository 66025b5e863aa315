"""What the assistant is saying in this tab now, as its socket can tell from the audio it forwards.

The page plays the replies it asked for (``requested_here``), their chunks
gaplessly as they arrive (static/voice/player.js): a chunk forwarded at time t
plays from max(t, end of the one before) for its own duration, and its header
says which characters of the reply it speaks. That estimate is enough to know
whether the assistant is audible (to duck it, and to judge a barge-in), which
words were sounding while a person spoke (only those can come back as echo:
a follow-up that repeats the reply's words after it ended is a question), and
roughly how much of a reply was heard when a voice stopped it. The page's own
``heard`` event, when it comes, is the exact figure. While the microphone is
open, each chunk also keeps its samples (16 kHz), so that the echo canceller
knows what was sounding at any moment (``sounding``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .. import audio
from ..stt import SAMPLE_RATE

# Echo reaches the microphone a little after the page plays it (network, buffers, the room).
ECHO_SLACK = 0.6


@dataclass(frozen=True)
class PlayedChunk:
    start: float
    end: float
    text_start: int
    text_end: int
    samples: np.ndarray | None = field(default=None, compare=False, repr=False)  # PCM16 at 16 kHz, if kept


@dataclass
class PlayedReply:
    """One reply as this tab plays it."""

    message_id: int
    text: str = ""
    chunks: list[PlayedChunk] = field(default_factory=list)
    stopped: bool = False
    paused_at: float | None = None  # the page holds it paused since then (someone talks over it)

    @property
    def started(self) -> float | None:
        return self.chunks[0].start if self.chunks else None

    @property
    def ends(self) -> float:
        return self.chunks[-1].end if self.chunks else 0.0

    def played_until(self, now: float) -> float:
        """Where playback stands: ``now``, or the moment the page paused it."""
        return now if self.paused_at is None else min(now, self.paused_at)

    def heard_ms(self, now: float) -> int:
        if self.started is None:
            return 0
        return round(1000 * max(0.0, min(self.played_until(now), self.ends) - self.started))

    def said_between(self, since: float, until: float) -> str:
        """The sentences that sounded (or were due to) between ``since`` and ``until``.

        A pause does not shorten this: the echo of what sounded before it, still in the room and in the
        browser's buffers, may come back after it.
        """
        spans = [
            (chunk.text_start, chunk.text_end)
            for chunk in self.chunks
            if chunk.start <= until and chunk.end + ECHO_SLACK >= since
        ]
        # dict.fromkeys: a chunk cut in two by a pause says its words once
        return " ".join(self.text[start:end] for start, end in dict.fromkeys(spans))


class Playback:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._replies: deque[PlayedReply] = deque(maxlen=4)

    def _reply(self, message_id: int) -> PlayedReply:
        for reply in self._replies:
            if reply.message_id == message_id:
                return reply
        reply = PlayedReply(message_id)
        self._replies.append(reply)
        return reply

    def text(self, message_id: int, delta: str) -> None:
        self._reply(message_id).text += delta

    def final_text(self, message_id: int, text: str) -> None:
        self._reply(message_id).text = text

    def audio(
        self,
        message_id: int,
        seconds: float,
        text_start: int = 0,
        text_end: int = 0,
        samples: np.ndarray | None = None,
    ) -> None:
        """A chunk of ``seconds`` of reply ``message_id``, speaking ``text[text_start:text_end]``, went to the page.

        ``samples``: its sound at 16 kHz (PCM16), kept for the echo canceller.
        """
        reply, now = self._reply(message_id), self.clock()
        if reply.stopped:
            return
        start = max(now, reply.ends)
        reply.chunks.append(PlayedChunk(start, start + seconds, text_start, text_end, samples))

    def time_of(self, message_id: int, played_ms: int) -> float | None:
        """When, by the estimate, reply ``message_id`` sounds its audio at ``played_ms``; None if it has no such."""
        for reply in self._replies:
            if reply.message_id != message_id:
                continue
            if reply.paused_at is not None or reply.stopped:
                return None  # the estimate holds it still: where it would be is not a time
            left = played_ms / 1000
            for chunk in reply.chunks:
                if left <= chunk.end - chunk.start:
                    return chunk.start + left
                left -= chunk.end - chunk.start
        return None

    def pause(self, message_id: int) -> None:
        """The page pauses the reply now (``playback.duck``): nothing more of it is heard until ``resume``."""
        reply = self._reply(message_id)
        if not reply.stopped and reply.paused_at is None:
            reply.paused_at = self.clock()

    def resume(self, message_id: int) -> None:
        """The page lets the reply go on: what was left plays later by the length of the pause."""
        reply, now = self._reply(message_id), self.clock()
        since, reply.paused_at = reply.paused_at, None
        if since is None or reply.stopped:
            return
        pause = now - since
        chunks = []
        for chunk in reply.chunks:
            if chunk.start < since < chunk.end:  # paused in its middle: its rest plays after the pause
                head, tail = _split(chunk, since)
                chunks += [head, replace(tail, start=tail.start + pause, end=tail.end + pause)]
            elif chunk.start >= since:
                chunks.append(replace(chunk, start=chunk.start + pause, end=chunk.end + pause))
            else:
                chunks.append(chunk)
        reply.chunks = chunks

    def stopped(self, message_id: int) -> None:
        """The reply stopped playing (interrupted, cancelled, or stopped by a tab)."""
        reply = self._reply(message_id)
        now = reply.played_until(self.clock())
        reply.stopped = True
        reply.chunks = [replace(chunk, end=min(chunk.end, now)) for chunk in reply.chunks if chunk.start <= now]

    def stopped_all(self) -> None:
        """Stop pressed: nothing plays any more."""
        for reply in list(self._replies):
            self.stopped(reply.message_id)

    def speaking(self) -> PlayedReply | None:
        """The reply being played now (or held paused in the middle), if any."""
        now = self.clock()
        for reply in reversed(self._replies):
            if reply.started is not None and not reply.stopped and reply.started <= now:
                if reply.paused_at is not None or now < reply.ends:
                    return reply
        return None

    def sounding(self, since: float, count: int) -> np.ndarray:
        """The replies' sound from ``since`` (a ``clock()`` time), ``count`` samples at 16 kHz: zeros where none.

        As estimated: a chunk sounds from its start for as long as its samples last, not while paused, not
        after a stop.
        """
        out = np.zeros(count, dtype=np.int32)
        until = since + count / SAMPLE_RATE
        for reply in self._replies:
            limit = min(until, reply.paused_at) if reply.paused_at is not None else until
            for chunk in reply.chunks:
                if chunk.samples is None or chunk.end <= since or chunk.start >= limit:
                    continue
                begin = max(since, chunk.start)
                skip, at = round((begin - chunk.start) * SAMPLE_RATE), round((begin - since) * SAMPLE_RATE)
                length = min(round((min(limit, chunk.end) - begin) * SAMPLE_RATE), count - at)
                part = chunk.samples[skip : skip + max(0, length)]
                out[at : at + len(part)] += part
        return np.clip(out, -32768, 32767).astype(np.int16)

    def said_since(self, since: float) -> str:
        """What the assistant said from ``since`` (a ``clock()`` time) until now."""
        now = self.clock()
        return " ".join(filter(None, (reply.said_between(since, now) for reply in self._replies)))


def _split(chunk: PlayedChunk, at: float) -> tuple[PlayedChunk, PlayedChunk]:
    """``chunk`` before and from ``at``: the same words, each with its own samples."""
    samples = chunk.samples
    cut = round((at - chunk.start) * SAMPLE_RATE)
    return (
        replace(chunk, end=at, samples=None if samples is None else samples[:cut]),
        replace(chunk, start=at, samples=None if samples is None else samples[cut:]),
    )


def chunk_samples(header: dict, data: bytes) -> np.ndarray | None:
    """One reply chunk as PCM16 at 16 kHz, mono (what the echo canceller compares); None for MP3 or bad audio."""
    try:
        chunk = audio.AudioChunk(data, header["sample_rate"], header["format"], header.get("channels", 1))
        if chunk.format == audio.WAV:
            chunk = audio.read_wav(data)
        elif chunk.format != audio.PCM_S16LE:
            return None  # MP3 (gTTS): not decoded here; the word judge still guards against its echo
        pcm = audio.resample(bytes(chunk.data), chunk.sample_rate, SAMPLE_RATE, chunk.channels)
    except (audio.AudioFormatError, KeyError, ValueError):
        return None
    return np.frombuffer(pcm, dtype="<i2")


def chunk_seconds(header: dict, data: bytes) -> float:
    """How long one reply chunk plays (``header`` as in ``protocol.AudioData``); 0 if it cannot be told."""
    try:
        return audio.AudioChunk(data, header["sample_rate"], header["format"], header.get("channels", 1)).duration
    except (audio.AudioFormatError, KeyError, ValueError):
        return 0.0
