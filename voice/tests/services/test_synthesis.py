"""The segment cache shared through Redis, as between the processes of a deployment."""

import uuid

import pytest
from django.core.cache import caches

from voice.tests.helpers import chunk
from voice.tts import cache as segment_cache


@pytest.mark.django_db
async def test_the_cache_is_shared_through_redis(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        }
    }
    room = 4 * segment_cache.MAX_SHARED_BYTES
    one, other = (segment_cache.SegmentCache(10_000, "default", shared_bytes=room) for _ in range(2))
    key = segment_cache.key("piper", "joe", 1.0, "Shared.")
    await one.put(key, segment_cache.Entry((chunk(7),), 0.25))
    entry = await other.get(key)  # another process, as it were
    assert entry.chunks == (chunk(7),) and entry.synthesis_seconds == 0.25
    # In Redis, in a slot of its own: however much is said, no more than the slots are kept.
    for n in range(12):
        await one.put(segment_cache.key("piper", "joe", 1.0, f"Said {n}."), segment_cache.Entry((chunk(n),), 0.1))
    client = caches["default"]._cache.get_client(write=False)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    held = client.keys(f"{prefix}:*")
    assert 0 < len(held) <= 4 and all(segment_cache.SHARED_PREFIX.encode() in k for k in held)
    client.delete(*held)
