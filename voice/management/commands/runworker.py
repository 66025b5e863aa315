"""Channels' ``runworker``, made to outlive channel-layer outages and to stop cleanly.

Channels' worker dies on the first Redis error; this one logs it, waits and
listens again, so workers recover by themselves when Redis comes back. On
SIGTERM (or SIGINT) it stops taking jobs, stores the replies it is producing
as interrupted (``voice.lifecycle.shutdown``) and exits.
"""

import asyncio
import logging
import signal

from channels.management.commands.runworker import Command as ChannelsRunworker
from channels.worker import Worker

from voice import lifecycle
from voice.dispatch import WORKER_CHANNEL
from voice.layers import CHANNEL_LAYER_ERRORS, raise_if_cancelled

logger = logging.getLogger("voice.worker")


class ResilientWorker(Worker):
    # Short, so that jobs sent right after Redis returns are taken well within
    # VOICE_REPLY_WORKER_TIMEOUT; a connection attempt every 2 s costs nothing.
    max_backoff = 2.0

    async def handle(self):
        loop = asyncio.get_running_loop()
        listeners = [asyncio.ensure_future(self.listener(channel)) for channel in self.channels]
        stopping = loop.create_future()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: stopping.done() or stopping.set_result(None))
        await asyncio.wait([*listeners, stopping], return_when=asyncio.FIRST_COMPLETED)
        for listener in listeners:
            listener.cancel()  # no new jobs
        if stopping.done():
            logger.info("Stopping: storing the replies in production")
            await lifecycle.shutdown()
            return
        for listener in listeners:
            if not listener.cancelled() and listener.exception():
                raise listener.exception()  # a listener's error ends the worker, as in Channels

    async def listener(self, channel):
        loop = asyncio.get_running_loop()
        backoff = 0.5
        while True:
            raise_if_cancelled()
            started = loop.time()
            try:
                await self._listen(channel)
            except CHANNEL_LAYER_ERRORS as exc:
                raise_if_cancelled()
                if loop.time() - started > 60:
                    backoff = 0.5  # a new outage, not the same one
                logger.warning("Channel layer unavailable (%s); listening again in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _listen(self, channel) -> None:
        """Channels' ``Worker.listener``, ending when cancelled even if the layer's receive swallowed the cancel."""
        while True:
            message = await self.channel_layer.receive(channel)
            raise_if_cancelled()
            if not message.get("type"):
                raise ValueError("Worker received message with no type.")
            queue = self.get_or_create_application_instance(channel, {"type": "channel", "channel": channel})
            await queue.put(message)


# The channel's name before it was voice-replies: old service files keep working.
CHANNEL_ALIASES = {"voice-tts": WORKER_CHANNEL}


class Command(ChannelsRunworker):
    help = f"Run a worker for the given channels (for this project: {WORKER_CHANNEL}), surviving Redis outages."
    worker_class = ResilientWorker

    def handle(self, *args, **options):
        channels = []
        for channel in options["channels"]:
            if channel in CHANNEL_ALIASES:
                logger.warning("The channel %s is now called %s", channel, CHANNEL_ALIASES[channel])
            channels.append(CHANNEL_ALIASES.get(channel, channel))
        super().handle(*args, **{**options, "channels": channels})
