"""Lowering a reply in every tab while someone talks over it, and bringing it back.

A reply may be held down for more than one reason at a time (a speech onset,
then the turn it becomes, then the next turn): it comes back only when the
last of them lets go, and never once it was stopped (the page has nothing to
bring back then).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from .. import protocol
from .playback import PlayedReply


class Ducking:
    def __init__(self, publish: Callable[[protocol.Event], Awaitable[None]]) -> None:
        self.publish = publish  # to every tab of the conversation
        self._holds: Counter[int] = Counter()

    async def hold(self, reply: PlayedReply) -> None:
        self._holds[reply.message_id] += 1
        if self._holds[reply.message_id] == 1:
            await self.publish(protocol.PlaybackDuck(reply.message_id, True))

    async def release(self, reply: PlayedReply) -> None:
        if self._holds[reply.message_id] <= 0:
            return
        self._holds[reply.message_id] -= 1
        if self._holds[reply.message_id] == 0:
            del self._holds[reply.message_id]
            if not reply.stopped:
                await self.publish(protocol.PlaybackDuck(reply.message_id, False))
