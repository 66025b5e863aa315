"""Fixed-window rate limits in Django's cache (shared by every process when Redis is configured)."""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.core.cache import cache

WINDOW = 60  # seconds


def _key(ident: str) -> str:
    return f"voice-rate:{ident}:{int(time.time() // WINDOW)}"


def allow(ident: str, limit: int, cost: int = 1) -> bool:
    """Count ``cost`` (a request, or its characters) for ``ident``; False once it is over ``limit`` this minute
    (0: no limit). Blocking."""
    if limit <= 0:
        return True
    key = _key(ident)
    cache.add(key, 0, timeout=2 * WINDOW)
    return cache.incr(key, cost) <= limit


async def aallow(ident: str, limit: int) -> bool:
    """``allow`` for the event loop.

    Not with Django's ``aincr``: it reads, then writes, so requests at the same moment (two tabs, two servers)
    would each count as the same one. The backends' own ``incr`` is atomic (Redis INCR, a lock in memory).
    Not on the thread that does the database work either: a flood must not queue there.
    """
    if limit <= 0:
        return True
    return await sync_to_async(allow, thread_sensitive=False)(ident, limit)
