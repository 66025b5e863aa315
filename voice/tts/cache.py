"""Audio of segments said before: greetings, stock phrases, repeated API requests, replays.

Keyed by engine, voice, speed and the exact spoken text. Kept in this
process's memory up to VOICE_TTS_CACHE_MB (least recently used go first) and,
when Redis is configured, shared through Django's cache so that every server
and worker benefits.
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

# Longer segments are rarely repeated word for word; keep them out of Redis.
MAX_SHARED_BYTES = 2 * 1024 * 1024


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
    def __init__(self, max_bytes: int, shared_alias: str | None = None, ttl: int = 86400) -> None:
        self.max_bytes = max_bytes
        self.shared_alias = shared_alias
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
                entry = await caches[self.shared_alias].aget(cache_key)
            except Exception:
                logger.warning("The shared speech cache is unavailable", exc_info=True)
                return None
            if entry is not None:
                self._remember(cache_key, entry)
        return entry

    async def put(self, cache_key: str, entry: Entry) -> None:
        self._remember(cache_key, entry)
        if self.shared_alias and entry.size <= MAX_SHARED_BYTES:
            try:
                await caches[self.shared_alias].aset(cache_key, entry, self.ttl)
            except Exception:
                logger.warning("The shared speech cache is unavailable", exc_info=True)

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
