"""What the assistant is saying on the page now, as this socket can tell from the audio it forwards.

The page plays a reply's chunks gaplessly as they arrive (static/voice/player.js),
so a chunk forwarded at time t plays from max(t, end of the one before) for its
own duration. That estimate is enough to know whether the assistant is
audible (to duck it, and to judge a barge-in), which words may come back as
echo, and roughly how much of a reply was heard when a voice stopped it. The
page's own ``heard`` event, when it comes, is the exact figure.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .. import audio

# Echo reaches the microphone a little after the page plays it (network, buffers, the room).
ECHO_SLACK = 0.6
# Words the assistant said this long ago can still come back in a turn being heard.
RECENT = 4.0


@dataclass
class Spoken:
    message_id: int
    text: str = ""
    started: float | None = None
    ends: float = 0.0
    stopped: bool = False

    def heard_ms(self, now: float) -> int:
        if self.started is None:
            return 0
        return round(1000 * (min(now, self.ends) - self.started))


class Playback:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._replies: deque[Spoken] = deque(maxlen=4)

    def _reply(self, message_id: int) -> Spoken:
        for spoken in self._replies:
            if spoken.message_id == message_id:
                return spoken
        spoken = Spoken(message_id)
        self._replies.append(spoken)
        return spoken

    def text(self, message_id: int, delta: str) -> None:
        self._reply(message_id).text += delta

    def final_text(self, message_id: int, text: str) -> None:
        self._reply(message_id).text = text

    def audio(self, message_id: int, seconds: float) -> None:
        """A chunk of ``seconds`` of reply ``message_id`` went to the page now."""
        spoken, now = self._reply(message_id), self.clock()
        if spoken.stopped:
            return
        start = max(now, spoken.ends)
        if spoken.started is None:
            spoken.started = start
        spoken.ends = start + seconds

    def stopped(self, message_id: int) -> None:
        """The reply stopped playing (interrupted, cancelled, or stopped by a tab)."""
        spoken, now = self._reply(message_id), self.clock()
        spoken.stopped = True
        spoken.ends = min(spoken.ends, now)

    def stopped_all(self) -> None:
        """Stop pressed: nothing plays any more."""
        for spoken in list(self._replies):
            self.stopped(spoken.message_id)

    def speaking(self) -> Spoken | None:
        """The reply being played now, if any."""
        now = self.clock()
        for spoken in reversed(self._replies):
            if spoken.started is not None and not spoken.stopped and spoken.started <= now < spoken.ends:
                return spoken
        return None

    def said(self, within: float = RECENT) -> str:
        """The text of the replies audible in the last ``within`` seconds (and until echo can still arrive)."""
        now = self.clock()
        return " ".join(
            spoken.text
            for spoken in self._replies
            if spoken.started is not None and spoken.ends + ECHO_SLACK + within > now
        )


def chunk_seconds(header: dict, data: bytes) -> float:
    """How long one reply chunk plays (``header`` as in ``protocol.AudioData``); 0 if it cannot be told."""
    try:
        if header.get("format") == audio.WAV:
            return audio.read_wav(data).duration
        return audio.AudioChunk(data, header["sample_rate"], header["format"], header.get("channels", 1)).duration
    except (audio.AudioFormatError, KeyError, ValueError):
        return 0.0
