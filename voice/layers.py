"""Talking to the channel layer when it may be failing.

Redis can vanish and come back; the first command on a pooled connection that
predates the restart then fails, and a second on a fresh one succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from channels.exceptions import ChannelFull

try:
    from redis.exceptions import RedisError
except ImportError:  # channels-redis not installed
    RedisError = OSError

# What a channel layer raises when it cannot deliver.
TRANSIENT_ERRORS = (OSError, RedisError)
CHANNEL_LAYER_ERRORS = (*TRANSIENT_ERRORS, ChannelFull)


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop, though an await below swallowed it.

    On Python 3.11, ``asyncio.wait_for`` (redis-py uses it for every command)
    returns the result, or raises TimeoutError, when a cancel arrives as its
    call completes. A loop that carries on after that never ends, and the event
    loop's shutdown, which cancels each task once, waits for it forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def retrying(call: Callable[..., Awaitable], *args, attempts: int = 2, pause: float = 0.2):
    """``await call(*args)``, once more after a transient failure."""
    for attempt in range(1, attempts + 1):
        try:
            return await call(*args)
        except TRANSIENT_ERRORS:
            raise_if_cancelled()
            if attempt == attempts:
                raise
            await asyncio.sleep(pause)
