"""Pausing a reply in every tab while someone talks over it, and letting it go on.

The page pauses it where it is (static/voice/player.js ``duck``), so a false
alarm (a cough, "mm-hm") costs a moment, not words. A reply may be held for
more than one reason at a time (a speech onset, then the turn it becomes,
then the next turn): it goes on only when the last of them lets go, never once
it was stopped, and the playback estimate learns that it was paused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from .. import protocol
from .playback import Playback, PlayedReply


class Ducking:
    def __init__(self, publish: Callable[[protocol.Event], Awaitable[None]], playback: Playback) -> None:
        self.publish = publish  # to every tab of the conversation
        self.playback = playback
        self._holds: Counter[int] = Counter()

    async def hold(self, reply: PlayedReply) -> None:
        self._holds[reply.message_id] += 1
        if self._holds[reply.message_id] == 1:
            self.playback.pause(reply.message_id)
            await self.publish(protocol.PlaybackDuck(reply.message_id, True))

    async def release(self, reply: PlayedReply) -> None:
        if self._holds[reply.message_id] <= 0:
            return
        self._holds[reply.message_id] -= 1
        if self._holds[reply.message_id] == 0:
            del self._holds[reply.message_id]
            if not reply.stopped:
                self.playback.resume(reply.message_id)
                await self.publish(protocol.PlaybackDuck(reply.message_id, False))
