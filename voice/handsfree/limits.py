"""How many sockets of one user may listen at once (VOICE_HANDSFREE_SOCKETS_PER_USER).

An open microphone costs a little CPU all the time and a transcription per
turn, so one account cannot open many. The count lives in Django's cache
(shared by every process when Redis is configured): a map of listening
channels to when their claim lapses. A socket renews its claim while it
listens, so one whose process died stops counting within ``LEASE`` seconds.
Two sockets claiming at the same instant may both pass: the limit is a
bound on cost, not a security boundary.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

LEASE = 120  # seconds; renewed every LEASE / 4


def _key(user_pk: int) -> str:
    return f"voice-listening:{user_pk}"


async def _live(user_pk: int) -> dict[str, float]:
    now = time.time()
    claims = await cache.aget(_key(user_pk)) or {}
    return {channel: until for channel, until in claims.items() if until > now}


async def claim(user_pk: int, channel: str, renewal: bool = False) -> bool:
    """Count ``channel`` as listening for ``user_pk``; False if that would pass the limit.

    ``renewal``: the channel's claim cannot have lapsed yet. If it is missing all the same, another socket's
    write replaced the map meanwhile (the read and the write are not one step): it is put back, whatever the
    count.
    """
    limit = settings.VOICE_HANDSFREE_SOCKETS_PER_USER
    claims = await _live(user_pk)
    if not renewal and channel not in claims and limit > 0 and len(claims) >= limit:
        return False
    claims[channel] = time.time() + LEASE
    await cache.aset(_key(user_pk), claims, timeout=LEASE)
    return True


async def release(user_pk: int, channel: str) -> None:
    claims = await _live(user_pk)
    if claims.pop(channel, None) is not None:
        await cache.aset(_key(user_pk), claims, timeout=LEASE)
