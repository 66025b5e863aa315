"""Helpers the tests of every tier share, imported by name (fixtures live in conftest.py).

The chat socket as a test client sees it, the speech API's token socket, what speech sounds like,
test audio, manage.py's output, and speech-ready text as the voice is given it.
"""

import asyncio
import inspect
import io
import json

import numpy as np
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.test import Client

from voice import audio
from voice.filters.speech import Piece, SpeechText
from voice.sentences import Sentence, SentenceSplitter
from voice.stt import SAMPLE_RATE
from voice.tests.servers import decoded

ORIGIN = (b"origin", b"http://127.0.0.1")


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [(b"cookie", cookie), ORIGIN]


def chat_communicator(conversation_id: int, headers, query: str = "") -> WebsocketCommunicator:
    from voiceproject.asgi import application

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
    return decoded(frame["bytes"] if frame.get("bytes") is not None else frame["text"])


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


# --- The speech API's token socket ---------------------------------------------------------------
async def read_socket(path):
    """What the speech API's token socket at ``path`` sends, and its close code."""
    from voiceproject.asgi import application

    communicator = WebsocketCommunicator(application, path)  # no Origin, no cookie: like a kiosk
    connected, _ = await communicator.connect()
    assert connected
    messages = []
    while True:
        frame = await communicator.receive_output(20)
        if frame["type"] == "websocket.close":
            return messages, frame.get("code", 1000)
        messages.append(json.loads(frame["text"]))


# --- manage.py, test audio, speech-ready text ------------------------------------------------------
def run_command(*args) -> str:
    """What ``manage.py`` prints for ``args`` (its errors raise CommandError)."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def silence(seconds: float) -> bytes:
    """16 kHz PCM16 of nothing."""
    return bytes(int(seconds * SAMPLE_RATE) * 2)


def noise(seconds: float, level: float = 0.003) -> bytes:
    """16 kHz PCM16 of steady noise, the same every time: quiet enough not to be speech by default."""
    return audio.to_pcm16(np.random.default_rng(7).normal(0, level, int(seconds * SAMPLE_RATE)))


def sentences(shown: str, step: int | None = None, **options) -> tuple[list[Sentence], list[Piece]]:
    """The sentences said for ``shown`` fed in deltas of ``step`` characters (all at once: None)."""
    speech, splitter = SpeechText(**options), SentenceSplitter()
    found, pieces = [], []
    step = step or max(1, len(shown))
    for i in range(0, len(shown), step):
        pieces += (new := speech.feed(shown[i : i + step]))
        found += splitter.feed(new)
    pieces += (new := speech.flush())
    found += splitter.feed(new) + splitter.flush()
    return found, pieces


def said(shown: str, **options) -> str:
    """What the voice says for ``shown``: its sentences, joined by spaces."""
    return " ".join(sentence.text for sentence in sentences(shown, **options)[0])


def chunk(n: int, size: int = 1000) -> audio.AudioChunk:
    """``size`` bytes of PCM, all ``n``: a chunk to tell from the others."""
    return audio.AudioChunk(data=bytes([n % 256]) * size, sample_rate=16000, format="pcm_s16le")
