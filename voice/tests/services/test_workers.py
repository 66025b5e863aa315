"""The worker dispatch tests of fast/test_workers.py again, on a real Redis channel layer."""

import uuid

import pytest

from voice.tests.fast.test_workers import *  # noqa: F403 (its tests, collected here too, with the layer below)

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A prefix of its own: nothing else on this Redis is touched.
            "CONFIG": {
                **settings.CHANNEL_LAYERS["default"].get("CONFIG", {}),
                "hosts": [{"address": REDIS, "socket_timeout": 10}],
                "prefix": f"test-{uuid.uuid4().hex[:8]}",
                "expiry": 10,
            },
        }
    }
    return "redis"
