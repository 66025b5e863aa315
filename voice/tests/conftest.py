import asyncio
import inspect
import ipaddress
import json
import socket
from dataclasses import astuple

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from voice import protocol, responders, tts
from voice.models import Conversation

from .engines import GatedEngine

# No start-up work in the test process: it would load models no test asked
# for, and look for stale replies in a database that is not the test's.
settings.VOICE_WARM_UP = False
# Synthesis in threads of the test process: test engines share state with the
# test (a gate it opens). The process pool has tests of its own.
settings.VOICE_TTS_PROCESSES = 0
from voiceproject.asgi import application  # noqa: E402

ORIGIN = (b"origin", b"http://127.0.0.1")


def pytest_sessionfinish(session):
    """Leave no files behind: a file SQLite test database in WAL mode leaves -wal and -shm beside it."""
    from pathlib import Path

    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and name:
        for suffix in ("-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def drop_stray_connections(django_db_setup, django_db_blocker):
    """Let the test database be dropped on PostgreSQL.

    Async tests reach the database from executor threads, whose connections
    outlive the tests; PostgreSQL refuses to drop a database still in use.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Fail any test that tries to leave this machine (gTTS must be faked)."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise OSError(f"Test tried to reach {host}: tests must not need the internet.")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(autouse=True)
def audio_in_memory(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate limits count in the cache, which outlives a test; users of one test start afresh."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def read_aloud(settings):
    """Replies read the query back unless a test asks for a model: fast, and exact to assert."""
    settings.VOICE_RESPONDER = "readaloud"


@pytest.fixture(autouse=True)
def fresh_engines():
    """Engines and responders are per-process singletons; tests that swap them must not leak."""
    kept = {name: engine for name, engine in tts._instances.items() if name in tts.ENGINES}
    kept_responders = {name: r for name, r in responders._instances.items() if name in responders.RESPONDERS}
    yield
    tts._instances.clear()
    tts._instances.update(kept)
    responders._instances.clear()
    responders._instances.update(kept_responders)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("mallory", password="pw-mallory-123")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)


@pytest.fixture
def conversation(user):
    return Conversation.objects.create(owner=user)


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [(b"cookie", cookie), ORIGIN]


def chat_communicator(conversation_id: int, headers, query: str = "") -> WebsocketCommunicator:
    path = f"/ws/chat/{conversation_id}/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, headers=headers)


def pcm_samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768


def assert_is_speech(pcm: bytes, sample_rate: int, min_seconds: float, max_seconds: float) -> None:
    samples = pcm_samples(pcm)
    seconds = len(samples) / sample_rate
    assert min_seconds <= seconds <= max_seconds, f"{seconds:.2f} s of audio"
    rms = float(np.sqrt(np.mean(samples**2)))
    assert rms > 0.02, f"audio is (nearly) silent: rms {rms:.4f}"
    # Speech has pauses and loud parts; a constant signal is not speech.
    window = sample_rate // 50
    frames = samples[: len(samples) // window * window].reshape(-1, window)
    energies = np.sqrt((frames**2).mean(axis=1))
    assert energies.max() > 5 * max(np.percentile(energies, 10), 1e-4), "no dynamics: not speech"


# --- Talking to the chat socket ------------------------------------------------
async def receive_frame(communicator, seconds=20):
    """One frame as ("event", dict) or ("audio", header, bytes)."""
    frame = await communicator.receive_output(seconds)
    if frame["type"] == "websocket.close":
        return ("close", frame.get("code"))
    if frame.get("bytes") is not None:
        return ("audio", *astuple(protocol.AudioData.from_frame(frame["bytes"])))
    return ("event", json.loads(frame["text"]))


async def until_done(communicator, seconds=30):
    """Every frame up to and including reply.done."""
    frames = []
    async with asyncio.timeout(seconds):
        while True:
            frame = await receive_frame(communicator)
            frames.append(frame)
            if frame[0] == "event" and frame[1]["type"] == "reply.done":
                return frames


async def until(communicator, wanted, seconds=10):
    """Frames up to and including the first event for which ``wanted(event)`` holds."""
    frames = []
    async with asyncio.timeout(seconds):
        while True:
            frame = await receive_frame(communicator)
            frames.append(frame)
            if frame[0] == "event" and wanted(frame[1]):
                return frames


def done_for(message_id):
    return lambda event: event["type"] == "reply.done" and event["message_id"] == message_id


async def first_audio(communicator) -> int:
    """Wait for a reply's first audio chunk; return the reply's id."""
    async with asyncio.timeout(10):
        while (frame := await receive_frame(communicator))[0] != "audio":
            assert frame[1]["type"] != "reply.done", "the reply ended without audio"
    return frame[1]["message_id"]


async def eventually(check, seconds=10, every=0.02):
    """The first truthy result of ``check()`` (awaited if need be), polled until ``seconds`` pass."""
    for _attempt in range(round(seconds / every)):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(every)
    raise AssertionError(f"still not so after {seconds} s")


def events(frames, kind=None):
    found = [f[1] for f in frames if f[0] == "event"]
    return [e for e in found if kind is None or e["type"] == kind]


def audio_frames(frames):
    return [(f[1], f[2]) for f in frames if f[0] == "audio"]


async def connect(conversation, user, query=""):
    communicator = chat_communicator(conversation.pk, await sync_to_async(session_headers)(user), query)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.fixture
def tone_engine(settings):
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.ToneEngine"


@pytest.fixture
def gated_engine(settings):
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.GatedEngine"
    GatedEngine.calls = 0
    GatedEngine.gate.clear()
    yield GatedEngine.gate
    GatedEngine.gate.set()
