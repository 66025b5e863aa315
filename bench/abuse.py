"""One abusive client beside normal users: their replies must not slow down, the server must not grow.

Five people hold read-aloud conversations on new text (``bench.conversations``),
calm, then while one other account floods voice input (noise utterances sent
back to back on one socket, each a transcription it asks for) and searches its
conversations on every keystroke of what it types. Their p95 first audio,
abused over calm, is the result (target: at most 1.3), with the server's
resident memory after each round and what the abuser was answered.
"""

from __future__ import annotations

import asyncio
import json
import string
import time
from collections import Counter

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from voice.listening import SILENCE_RMS

from . import conversations, measure
from .tables import table

USERS = 5
RATIO_LIMIT = 1.3
FRAME_BYTES = 3200  # 100 ms of 16 kHz PCM16, as the page sends
KEYSTROKES_PER_SECOND = 10


def noise(seconds: float, rng: np.random.Generator) -> bytes:
    """White noise well above the silence threshold: it reaches the transcriber, and holds no words."""
    samples = rng.normal(0.0, SILENCE_RMS * 4, round(seconds * 16000)).clip(-1, 1)
    return (samples * 32767).astype("<i2").tobytes()


async def flood_voice(client, conversation: int, until: float, answers: Counter, rng) -> None:
    """Noise utterances back to back, without waiting for answers; counts the error codes that come back."""
    url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{conversation}/"
    utterance = noise(1.0, rng)
    try:
        async with connect(url, additional_headers=client.headers(), max_size=None) as socket:

            async def listen() -> None:
                async for frame in socket:
                    if isinstance(frame, str):
                        event = json.loads(frame)
                        answers[event.get("code") or event["type"]] += 1

            listener = asyncio.create_task(listen())
            while time.perf_counter() < until:
                await socket.send(json.dumps({"type": "speech.start", "format": "pcm_s16le", "sample_rate": 16000}))
                for offset in range(0, len(utterance), FRAME_BYTES):
                    await socket.send(utterance[offset : offset + FRAME_BYTES])
                await socket.send(json.dumps({"type": "speech.end"}))
                answers["utterances sent"] += 1
                await asyncio.sleep(0.05)
            listener.cancel()
    except (OSError, WebSocketException) as exc:
        answers[type(exc).__name__] += 1


async def search_per_keystroke(client, until: float, answers: Counter, rng) -> None:
    """Types random words into the conversation search, one request per key, as a page without a debounce."""
    url = f"{client.server.url}/c/list/"
    typed = ""
    while time.perf_counter() < until:
        typed = typed + rng.choice(list(string.ascii_lowercase)) if len(typed) < 12 else ""
        response = await asyncio.to_thread(client.http.get, url, params={"q": typed}, timeout=30)
        answers[f"search {response.status_code}"] += 1
        await asyncio.sleep(1 / KEYSTROKES_PER_SECOND)


async def abused_level(client, abuser, plan, say, rng, pids: list[int]) -> tuple[conversations.Level, Counter]:
    answers: Counter = Counter()
    flood_conversation = abuser.new_conversation()
    until = time.perf_counter() + plan.seconds
    level, *_ = await asyncio.gather(
        conversations.run_level(client, USERS, plan, say, rng, pids),
        flood_voice(abuser, flood_conversation, until, answers, rng),
        search_per_keystroke(abuser, until, answers, rng),
    )
    return level, answers


def measure_abuse(server, client, abuser, plan, talk) -> dict:
    """Calm, abused, abused again (memory must not grow between the two), on one server."""
    cores = measure.machine()["cores"] or 1
    pids = [server.process.pid]
    rng = np.random.default_rng(7)
    results: dict = {"users": USERS, "seconds": plan.seconds, "rss_mib": {"start": measure.rss_mib(pids[0])}}
    calm = asyncio.run(conversations.run_level(client, USERS, plan, talk.read_aloud, talk.rng, pids))
    results["calm"] = calm.summary(cores)
    results["rss_mib"]["after calm"] = measure.rss_mib(pids[0])
    for name in ("abused", "abused again"):
        level, answers = asyncio.run(abused_level(client, abuser, plan, talk.read_aloud, rng, pids))
        results[name] = {**level.summary(cores), "abuser": dict(answers)}
        results["rss_mib"][f"after {name}"] = measure.rss_mib(pids[0])
    calm_p95 = results["calm"]["p95"]
    for name in ("abused", "abused again"):
        results[name]["p95_vs_calm"] = results[name]["p95"] / calm_p95 if calm_p95 else float("nan")
    return results


def tables(results: dict) -> list[tuple[str, str]]:
    rows = []
    for name in ("calm", "abused", "abused again"):
        s = results[name]
        ratio = "1.00" if name == "calm" else f"{s['p95_vs_calm']:.2f}"
        rows.append(
            [
                name,
                s["replies"],
                round(s["p50"] * 1000),
                round(s["p95"] * 1000),
                ratio,
                f"{s['stalled_share']:.1%}",
                s["errors"],
                f"{results['rss_mib'][f'after {name}']:.0f}",
            ]
        )
    headers = ["round", "replies", "p50 first audio (ms)", "p95 first audio (ms)", "p95 / calm"]
    headers += ["replies stalled", "errors", "server memory after (MiB)"]
    answered = [
        [name, ", ".join(f"{key}: {count}" for key, count in sorted(results[name]["abuser"].items()))]
        for name in ("abused", "abused again")
    ]
    title = (
        f"Abuse: {results['users']} users talking (read-aloud, new text), {results['seconds']:.0f} s per round, "
        f"beside one account flooding voice input and searching per keystroke; target p95 / calm <= {RATIO_LIMIT}"
    )
    return [
        (title, table(headers, rows)),
        ("What the abusive account was answered", table(["round", "answers"], answered)),
    ]
