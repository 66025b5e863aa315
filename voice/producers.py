"""The replies this process is producing, reachable from any process.

Every server and worker process listens on one channel of its own (per event
loop). A reply records that channel when it is claimed
(``Message.producer_channel``), so any tab, on any server, can stop it: a new
query interrupts the reply before it, wherever that reply is produced. The same
loop finalizes replies whose producer died (``voice.recovery``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from typing import Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from . import recovery
from .layers import CHANNEL_LAYER_ERRORS, raise_if_cancelled, retrying
from .protocol import ReplyStop

logger = logging.getLogger(__name__)

EARLY_STOPS_KEPT = 256


class Reply(Protocol):
    """What the registry needs of a reply in production (``voice.replies.Reply``)."""

    @property
    def message(self): ...

    @property
    def task(self) -> asyncio.Task | None: ...

    def stop(self, status: str, heard_ms: int | None = None) -> None: ...


class Producers:
    def __init__(self, channel_layer) -> None:
        self.channel_layer = channel_layer
        self.replies: dict[int, Reply] = {}
        # Stops for replies claimed here but not registered yet (still being set
        # up): message id -> (status, heard_ms), applied when they are added.
        self.early_stops: OrderedDict[int, tuple[str, int | None]] = OrderedDict()
        self.channel: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ready = asyncio.Lock()

    async def listen(self) -> str:
        """This process's stop channel, listening from the first call on."""
        async with self._ready:
            if self.channel is None:
                # The default prefix: channels_redis pops every channel of a
                # process from one Redis list only if they share it.
                self.channel = await self.channel_layer.new_channel()
                self._background(self._receive_stops(), self._sweep())
        return self.channel

    def _background(self, *coroutines) -> None:
        for coroutine in coroutines:
            task = asyncio.create_task(coroutine)
            self._tasks.add(task)  # the loop holds tasks only weakly
            task.add_done_callback(self._tasks.discard)

    def add(self, reply: Reply) -> None:
        self.replies[reply.message.pk] = reply
        early = self.early_stops.pop(reply.message.pk, None)
        if early is not None:
            reply.stop(*early)

    def discard(self, reply: Reply) -> None:
        if self.replies.get(reply.message.pk) is reply:
            del self.replies[reply.message.pk]

    def hold(self, task: asyncio.Task) -> None:
        """Keep a reply's task alive after the socket that started it is gone."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive_stops(self) -> None:
        """One receiver for the whole process, never cancelled mid-receive.

        channels_redis loses a message popped for another channel of this
        process if a receive() is cancelled while it waits.
        """
        while True:
            raise_if_cancelled()
            try:
                event = await self.channel_layer.receive(self.channel)
            except CHANNEL_LAYER_ERRORS as exc:
                raise_if_cancelled()
                logger.warning("Stop listener: channel layer unavailable (%s)", exc)
                await asyncio.sleep(1)
                continue
            if event.get("type") != ReplyStop.type:
                continue
            stop = ReplyStop.from_event(event)
            reply = self.replies.get(stop.message_id)
            if reply is not None:
                reply.stop(stop.status, stop.heard_ms)
                continue
            # Stops come here only once a reply is claimed here: this one is
            # being set up (or already done), and stops as soon as it is added.
            self.early_stops[stop.message_id] = (stop.status, stop.heard_ms)
            while len(self.early_stops) > EARLY_STOPS_KEPT:
                self.early_stops.popitem(last=False)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(settings.VOICE_REPLY_SWEEP_INTERVAL)
            try:
                await recovery.afinalize_abandoned(self.channel_layer)
            except Exception:
                raise_if_cancelled()
                logger.exception("Finalizing abandoned replies failed")

    async def stop_all(self, status: str, within: float) -> None:
        """Stop every reply produced here and wait, at most ``within`` s, for them to be stored (shutdown)."""
        replies = list(self.replies.values())
        for reply in replies:
            reply.stop(status)
        waiting = [reply.task for reply in replies if reply.task is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=within)


_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def producers_of_this_loop() -> list[Producers]:
    return list(_by_loop.get(asyncio.get_running_loop(), {}).values())


def producers(channel_layer=None) -> Producers:
    """This event loop's producers (one per channel layer)."""
    channel_layer = channel_layer or get_channel_layer()
    per_loop = _by_loop.setdefault(asyncio.get_running_loop(), {})
    if id(channel_layer) not in per_loop:
        per_loop[id(channel_layer)] = Producers(channel_layer)
    return per_loop[id(channel_layer)]


async def send_stop(channel_layer, channel: str, stop: ReplyStop) -> bool:
    """Ask the producer listening on ``channel`` to stop a reply; False if it cannot be reached."""
    try:
        await retrying(channel_layer.send, channel, stop.to_event())
    except CHANNEL_LAYER_ERRORS:
        logger.exception("Could not reach the producer of reply %s", stop.message_id)
        return False
    return True
