"""A page with a speaker instead of a headset, simulated: what its microphone hears of the replies it plays.

The models-tier tests and the benchmark both drive a listening socket with it; each moves the frames
itself (a ``WebsocketCommunicator`` there, a real socket here), this holds what happens in the room.
"""

from __future__ import annotations

import numpy as np

from voice import audio, protocol
from voice.handsfree.playback import chunk_samples
from voice.models import Message
from voice.stt import SAMPLE_RATE

FRAME = SAMPLE_RATE // 10  # the microphone sends 100 ms at a time


def along(gain_db: float, delay: float) -> np.ndarray:
    """The impulse response of a speaker heard ``gain_db`` quieter and ``delay`` seconds late, and nothing else."""
    response = np.zeros(round(delay * SAMPLE_RATE) + 1)
    response[-1] = 10 ** (gain_db / 20)
    return response


def stopped(event: dict, message_id: int | None) -> bool:
    """Whether ``event`` says that reply ``message_id`` was stopped (while being written, or after)."""
    message = event.get("message") if event["type"] == "message" else {}
    status = event.get("status") if event["type"] == "reply.done" else message.get("status")
    found = event.get("message_id", message.get("id"))
    return found == message_id and status in Message.STOPPED


class SpeakerPage:
    """Plays the first reply it is sent as player.js does, and hears it through ``response``.

    Chunks play gaplessly from their arrival (or the end of the one before), held while ``playback.duck``
    says so, and cut where the reply is stopped. The microphone hears the speaker through ``response`` (an
    impulse response: ``along``; overlap-add, so a room's tail rings on into the next frames) over a
    -60 dBFS noise floor, and ``person`` (what someone says into it, from the reply's first sound).
    """

    def __init__(self, response: np.ndarray, *, seed: int = 11, person: np.ndarray | None = None) -> None:
        self.response = response
        self.person = person
        self.rng = np.random.default_rng(seed)
        self.frames = 0  # of the microphone, sent
        self._ringing = np.zeros(len(response) - 1)
        self.next_reply()

    def next_reply(self) -> None:
        """Play the next reply it is sent (the microphone goes on)."""
        self.reply: int | None = None  # the reply it plays
        self.done: str | None = None  # its status once reply.done came
        self.stopped_as: str | None = None  # ... or the status it was stopped with
        self._queued = np.zeros(0, np.float32)
        self._playhead = 0  # samples of ``_queued`` played
        self._waited = 0  # of them, silence between chunks that came late: not the reply's
        self._paused = False
        self._said = 0  # samples of ``person`` said

    @property
    def seconds(self) -> float:
        """How long the reply plays (so far)."""
        return (len(self._queued) - self._waited) / SAMPLE_RATE

    def played_out(self, after: float) -> bool:
        """Whether the reply is over and ``after`` seconds of the room after it were heard."""
        return self.done is not None and self._playhead >= len(self._queued) + after * SAMPLE_RATE

    def receive(self, frame: tuple) -> None:
        """A frame the page received: ("audio", header, bytes) or ("event", dict)."""
        if frame[0] == "audio":
            if self.reply in (None, frame[1]["message_id"]):
                self.reply = frame[1]["message_id"]
                samples = chunk_samples(frame[1], frame[2]).astype(np.float32) / 32768
                gap = max(0, self._playhead - len(self._queued))  # the chunk came late: silence before it
                self._waited += gap
                self._queued = np.concatenate((self._queued, np.zeros(gap, np.float32), samples))
            return
        event = frame[1]
        if event["type"] == "playback.duck" and event["message_id"] == self.reply:
            self._paused = event["on"]
        elif event["type"] == "reply.done" and event["message_id"] == self.reply:
            self.done = event["status"]
        if stopped(event, self.reply):  # the page plays nothing more of it
            self._queued, self._paused = self._queued[: self._playhead], False
            self.stopped_as = event.get("status") or event["message"]["status"]

    def capture(self) -> tuple[bytes, dict | None]:
        """The microphone's next 100 ms (PCM16), and the ``playback.position`` the page sends after it."""
        sound = np.zeros(FRAME, np.float32)
        if self.reply is not None and not self._paused:
            part = self._queued[self._playhead : self._playhead + FRAME]
            sound[: len(part)] = part
            self._playhead += FRAME
        ringing = np.convolve(sound, self.response)  # what this frame still rings into the next ones
        ringing[: len(self._ringing)] += self._ringing
        heard, self._ringing = ringing[:FRAME], ringing[FRAME:]
        heard = heard + self.rng.normal(0, 1e-3, FRAME)
        if self.person is not None and self.reply is not None:
            said = self.person[self._said : self._said + FRAME]
            heard[: len(said)] += said
            self._said += FRAME
        self.frames += 1
        if self.reply is None:
            return audio.to_pcm16(heard), None
        played = min(self._playhead, len(self._queued)) - self._waited
        position = protocol.PlaybackPosition(self.reply, round(played * 1000 / SAMPLE_RATE), self.frames * FRAME)
        return audio.to_pcm16(heard), position.to_event()
