"""Channels' ``runworker``, made to outlive channel-layer outages.

Channels' worker dies on the first Redis error; this one logs it, waits and
listens again, so workers recover by themselves when Redis comes back.
"""

import asyncio
import logging

from channels.management.commands.runworker import Command as ChannelsRunworker
from channels.worker import Worker

from voice.layers import CHANNEL_LAYER_ERRORS

logger = logging.getLogger("voice.worker")


class ResilientWorker(Worker):
    # Short, so that jobs sent right after Redis returns are taken well within
    # VOICE_TTS_WORKER_TIMEOUT; a connection attempt every 2 s costs nothing.
    max_backoff = 2.0

    async def listener(self, channel):
        loop = asyncio.get_running_loop()
        backoff = 0.5
        while True:
            started = loop.time()
            try:
                await super().listener(channel)
            except CHANNEL_LAYER_ERRORS as exc:
                if loop.time() - started > 60:
                    backoff = 0.5  # a new outage, not the same one
                logger.warning("Channel layer unavailable (%s); listening again in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)


class Command(ChannelsRunworker):
    help = "Run a worker for the given channels (for this project: voice-tts), surviving Redis outages."
    worker_class = ResilientWorker
