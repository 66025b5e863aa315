"""Barge-in: what a person's voice does to the reply that is playing. Decided here, and only here.

``BargeIn`` takes the moments of the microphone (a speech onset, an onset
that faded, a turn that began, partial words, the final words, a turn given
up) with what is playing (``playback``), and answers with actions the session
carries out (``voice.handsfree.session``): pause the reply in every tab, let it
go on, stop it, store and answer the words, or store nothing and say why.

- **Pause early, stop late.** 64 ms of speech over the assistant pauses it
  where it is (the page's ``duck``), so a false alarm (a cough, "mm-hm")
  costs a moment, not words. A reply may be held for more than one reason at
  a time (an onset, then the turn it becomes): it goes on only when the last
  of them lets go, and never once it was stopped.
- **Words decide.** While the reply is paused, a partial transcript with a
  command or words of the person's own stops it (``echo.classify``); echo,
  an acknowledgement or too few words wait for the end of the turn.
- **At the end** nothing is stored for noise, the assistant's own words or
  an acknowledgement, and the reply goes on; a bare "stop" stops it and is not
  answered; anything else stops it and is answered.

The estimate of what plays (``Playback``) learns each decision at once, so
the next one sees it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..protocol import DiscardReason
from .echo import COMMANDS, FUNCTION_WORDS, Meaning, classify, words
from .playback import Playback, PlayedReply

# A turn's words are judged against what the assistant said from this long before the turn began.
ECHO_LEAD = 1.0


@dataclass(frozen=True)
class Pause:
    """Pause ``message_id`` in every tab, where it is."""

    message_id: int


@dataclass(frozen=True)
class Resume:
    """Let ``message_id`` go on in every tab."""

    message_id: int


@dataclass(frozen=True)
class Stop:
    """Stop ``message_id`` for good: it was heard for ``heard_ms``."""

    message_id: int
    heard_ms: int


@dataclass(frozen=True)
class Ask:
    """Store the turn's words and answer them."""


@dataclass(frozen=True)
class Discard:
    """Store nothing for the turn, for ``reason``."""

    reason: DiscardReason


Action = Pause | Resume | Stop | Ask | Discard


@dataclass(eq=False)
class Hold:
    """What one turn holds: the reply it paused, and whether it stopped it."""

    started: float  # playback clock time
    paused: PlayedReply | None = None
    stopped: bool = False


class BargeIn:
    """The barge-in policy of one listening socket."""

    def __init__(self, playback: Playback) -> None:
        self.playback = playback
        self._holds: Counter[int] = Counter()  # of each paused reply: it goes on when they are all let go
        self._onset: PlayedReply | None = None  # paused by an onset, before any turn began

    # --- Moments of the microphone ------------------------------------------------
    def speech_onset(self) -> list[Action]:
        speaking = self.playback.speaking()
        if speaking is None or self._onset is not None:
            return []
        self._onset = speaking
        return self._hold(speaking)

    def onset_faded(self) -> list[Action]:
        onset, self._onset = self._onset, None
        return self._let_go(onset)

    def turn_started(self) -> tuple[Hold, list[Action]]:
        """A turn began; it takes over the onset's pause (or pauses now: speech that started loud)."""
        hold = Hold(self.playback.clock())
        actions = self.speech_onset()
        hold.paused, self._onset = self._onset, None
        return hold, actions

    def turn_refused(self) -> list[Action]:
        """Past the rate limit: the turn is not listened to, and the reply goes on."""
        return self.onset_faded()

    def partial(self, hold: Hold | None, text: str) -> list[Action]:
        if hold is None or hold.paused is None or hold.stopped:
            return []
        if self._meaning(hold, text) in (Meaning.COMMAND, Meaning.SPEECH):
            return self._stop(hold)
        return []

    def final(self, hold: Hold | None, text: str) -> list[Action]:
        hold = hold or Hold(self.playback.clock())  # a turn whose start went wrong holds nothing
        meaning = self._meaning(hold, text)
        if meaning is Meaning.NOTHING:
            return self.give_up(hold, DiscardReason.NOISE)
        if meaning in (Meaning.ECHO, Meaning.BACKCHANNEL):
            return self.give_up(hold, DiscardReason(meaning.value))
        if hold.paused is not None and only_commands(text):
            # "Stop." means stop: answering it would start the assistant talking again.
            return [*self._stop(hold), *self.give_up(hold, DiscardReason.COMMAND)]
        return [*self._stop(hold), Ask()]

    def give_up(self, hold: Hold, reason: DiscardReason) -> list[Action]:
        """Nothing is stored for the turn: the reply it paused goes on."""
        return [*self.let_go(hold), Discard(reason)]

    def let_go(self, hold: Hold | None) -> list[Action]:
        """The turn is over (answered, given up or dropped): its pause ends, if the reply was not stopped."""
        if hold is None:
            return []
        paused, hold.paused = hold.paused, None
        return self._let_go(paused)

    # --- Holds ------------------------------------------------------------------------
    def _meaning(self, hold: Hold, text: str) -> Meaning:
        return classify(text, self.playback.said_since(hold.started - ECHO_LEAD))

    def _stop(self, hold: Hold) -> list[Action]:
        reply = hold.paused
        if reply is None or hold.stopped or reply.stopped:
            return []
        hold.stopped = True
        heard_ms = reply.heard_ms(self.playback.clock())
        self.playback.stopped(reply.message_id)
        return [Stop(reply.message_id, heard_ms)]

    def _hold(self, reply: PlayedReply) -> list[Action]:
        self._holds[reply.message_id] += 1
        if self._holds[reply.message_id] > 1:
            return []
        self.playback.pause(reply.message_id)
        return [Pause(reply.message_id)]

    def _let_go(self, reply: PlayedReply | None) -> list[Action]:
        if reply is None or self._holds[reply.message_id] <= 0:
            return []
        self._holds[reply.message_id] -= 1
        if self._holds[reply.message_id] > 0:
            return []
        del self._holds[reply.message_id]
        if reply.stopped:
            return []
        self.playback.resume(reply.message_id)
        return [Resume(reply.message_id)]


def only_commands(text: str) -> bool:
    """Whether ``text`` asks only to stop ("Stop.", "No, wait."): no words of a request of its own."""
    heard = words(text)
    return any(word in COMMANDS for word in heard) and all(word in COMMANDS or word in FUNCTION_WORDS for word in heard)
