"""What the assistant is saying in this tab now, as its socket can tell from the audio it forwards.

The page plays the replies it asked for (``requested_here``), their chunks
gaplessly as they arrive (static/voice/player.js): a chunk forwarded at time t
plays from max(t, end of the one before) for its own duration, and its header
says which characters of the reply it speaks. That estimate is enough to know
whether the assistant is audible (to duck it, and to judge a barge-in), which
words were sounding while a person spoke (only those can come back as echo:
a follow-up that repeats the reply's words after it ended is a question), and
roughly how much of a reply was heard when a voice stopped it. The page's own
``heard`` event, when it comes, is the exact figure.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import audio

# Echo reaches the microphone a little after the page plays it (network, buffers, the room).
ECHO_SLACK = 0.6


@dataclass(frozen=True)
class PlayedChunk:
    start: float
    end: float
    text_start: int
    text_end: int


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
        return " ".join(
            self.text[chunk.text_start : chunk.text_end]
            for chunk in self.chunks
            if chunk.start <= until and chunk.end + ECHO_SLACK >= since
        )


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

    def audio(self, message_id: int, seconds: float, text_start: int = 0, text_end: int = 0) -> None:
        """A chunk of ``seconds`` of reply ``message_id``, speaking ``text[text_start:text_end]``, went to the page."""
        reply, now = self._reply(message_id), self.clock()
        if reply.stopped:
            return
        start = max(now, reply.ends)
        reply.chunks.append(PlayedChunk(start, start + seconds, text_start, text_end))

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
        reply.chunks = [
            PlayedChunk(
                chunk.start + pause if chunk.start >= since else chunk.start,
                chunk.end + pause if chunk.end > since else chunk.end,
                chunk.text_start,
                chunk.text_end,
            )
            for chunk in reply.chunks
        ]

    def stopped(self, message_id: int) -> None:
        """The reply stopped playing (interrupted, cancelled, or stopped by a tab)."""
        reply = self._reply(message_id)
        now = reply.played_until(self.clock())
        reply.stopped = True
        reply.chunks = [
            PlayedChunk(chunk.start, min(chunk.end, now), chunk.text_start, chunk.text_end)
            for chunk in reply.chunks
            if chunk.start <= now
        ]

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

    def said_since(self, since: float) -> str:
        """What the assistant said from ``since`` (a ``clock()`` time) until now."""
        now = self.clock()
        return " ".join(filter(None, (reply.said_between(since, now) for reply in self._replies)))


def chunk_seconds(header: dict, data: bytes) -> float:
    """How long one reply chunk plays (``header`` as in ``protocol.AudioData``); 0 if it cannot be told."""
    try:
        return audio.AudioChunk(data, header["sample_rate"], header["format"], header.get("channels", 1)).duration
    except (audio.AudioFormatError, KeyError, ValueError):
        return 0.0
