"""Fixed-window rate limits in Django's cache (shared by every process when Redis is configured)."""

from __future__ import annotations

import time

from django.core.cache import cache

WINDOW = 60  # seconds


def _key(ident: str) -> str:
    return f"voice-rate:{ident}:{int(time.time() // WINDOW)}"


def allow(ident: str, limit: int) -> bool:
    """Count one request by ``ident``; False once it is over ``limit`` this minute (0: no limit). Blocking."""
    if limit <= 0:
        return True
    key = _key(ident)
    cache.add(key, 0, timeout=2 * WINDOW)
    return cache.incr(key) <= limit


async def aallow(ident: str, limit: int) -> bool:
    """``allow`` for the event loop."""
    if limit <= 0:
        return True
    key = _key(ident)
    await cache.aadd(key, 0, timeout=2 * WINDOW)
    return await cache.aincr(key) <= limit
