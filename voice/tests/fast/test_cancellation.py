"""Background loops end when cancelled, even when an await below them swallows the cancel.

On Python 3.11, ``asyncio.wait_for`` (redis-py wraps every command in it)
returns the result when a cancel arrives as its call completes. A loop that
carries on never ends, and the event loop's shutdown, which cancels each task
once and waits for all of them, hangs: a worker on SIGTERM, or a test run.
"""

import asyncio

from voice.management.commands.runworker import ResilientWorker
from voice.models import Message
from voice.producers import Producers
from voice.recorder import ReplyRecorder


class SwallowingLayer:
    """A channel layer whose receive answers a message when it is cancelled, as a 3.11 wait_for race does."""

    def __init__(self) -> None:
        self.receiving = asyncio.Event()

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}swallow!1"

    async def receive(self, channel: str) -> dict:
        self.receiving.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return {"type": "reply.stop", "message_id": 0, "status": "cancelled"}
        raise AssertionError("unreachable")


async def ends_when_cancelled(task: asyncio.Task) -> bool:
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    return bool(done)


async def test_the_stop_listener_ends_when_cancelled():
    layer = SwallowingLayer()
    registry = Producers(layer)
    await registry.listen()
    await layer.receiving.wait()
    tasks = list(registry._tasks)
    assert [await ends_when_cancelled(task) for task in tasks] == [True] * len(tasks)


async def test_a_worker_listener_ends_when_cancelled():
    layer = SwallowingLayer()
    worker = ResilientWorker(application=None, channels=["voice-replies"], channel_layer=layer)
    listening = asyncio.create_task(worker.listener("voice-replies"))
    await layer.receiving.wait()
    assert await ends_when_cancelled(listening)


async def test_a_replys_checkpoints_end_when_cancelled(monkeypatch, settings):
    settings.VOICE_REPLY_HEARTBEAT = 0.01
    saving = asyncio.Event()

    async def checkpoint_that_swallows_a_cancel(self) -> None:
        saving.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return

    monkeypatch.setattr(ReplyRecorder, "checkpoint", checkpoint_that_swallows_a_cancel)
    checkpoints = asyncio.create_task(ReplyRecorder(Message(pk=1), received_at=0.0).keep_checkpoints())
    await saving.wait()
    assert await ends_when_cancelled(checkpoints)
