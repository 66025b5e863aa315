"""Audio of segments said before: greetings, stock phrases, repeated API requests, replays.

Keyed by engine, voice, speed and the exact spoken text. Kept in this
process's memory up to VOICE_TTS_CACHE_MB (least recently used go first) and,
when Redis is configured, shared through Django's cache so that every server
and worker benefits.

The shared copy is bounded too: the same Redis carries the channel layer and
the rate limits, and filling it would take the service down. It has a fixed
number of slots (VOICE_TTS_SHARED_CACHE_MB over the largest segment shared),
each segment's slot chosen by its key; a newer segment in the same slot
replaces the older one, and a slot holding another segment is a miss.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.core.cache import caches

from ..audio import AudioChunk

logger = logging.getLogger(__name__)

# Longer segments are rarely repeated word for word; keep them out of Redis. (About 20 s of 22 kHz PCM.)
MAX_SHARED_BYTES = 1024 * 1024
SHARED_PREFIX = "voice-tts-slot:"


@dataclass(frozen=True)
class Entry:
    chunks: tuple[AudioChunk, ...]
    synthesis_seconds: float  # what a hit saves

    @property
    def size(self) -> int:
        return sum(len(chunk.data) for chunk in self.chunks)


def key(engine: str, voice: str, speed: float, text: str) -> str:
    digest = hashlib.sha256(f"{engine}\0{voice}\0{speed:.3f}\0{text}".encode()).hexdigest()
    return f"voice-tts:{digest}"


class SegmentCache:
    def __init__(
        self, max_bytes: int, shared_alias: str | None = None, ttl: int = 86400, shared_bytes: int = 0
    ) -> None:
        self.max_bytes = max_bytes
        self.shared_slots = shared_bytes // MAX_SHARED_BYTES
        self.shared_alias = shared_alias if self.shared_slots else None
        self.ttl = ttl
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def local(self, cache_key: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get(cache_key)
            if entry is not None:
                self._entries.move_to_end(cache_key)
            return entry

    async def get(self, cache_key: str) -> Entry | None:
        entry = self.local(cache_key)
        if entry is None and self.shared_alias:
            try:
                held = await caches[self.shared_alias].aget(self._slot(cache_key))
            except Exception:
                logger.warning("The shared speech cache is unavailable", exc_info=True)
                return None
            if held is not None and held[0] == cache_key:
                entry = held[1]
                self._remember(cache_key, entry)
        return entry

    async def put(self, cache_key: str, entry: Entry) -> None:
        self._remember(cache_key, entry)
        if self.shared_alias and entry.size <= MAX_SHARED_BYTES:
            try:
                await caches[self.shared_alias].aset(self._slot(cache_key), (cache_key, entry), self.ttl)
            except Exception:
                logger.warning("The shared speech cache is unavailable", exc_info=True)

    def _slot(self, cache_key: str) -> str:
        """The shared slot of a segment: its key's digest, modulo the slots."""
        return f"{SHARED_PREFIX}{int(cache_key.rsplit(':', 1)[-1][:16], 16) % self.shared_slots}"

    def _remember(self, cache_key: str, entry: Entry) -> None:
        if entry.size > self.max_bytes:
            return
        with self._lock:
            if cache_key in self._entries:
                self._bytes -= self._entries.pop(cache_key).size
            self._entries[cache_key] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                _key, oldest = self._entries.popitem(last=False)
                self._bytes -= oldest.size
