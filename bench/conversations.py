"""The benchmark that defines capacity: conversations held the way people hold them.

N virtual users each ask a three-sentence question, receive the reply (the
read-aloud responder speaks it back), wait until its audio would have finished
playing, think for a few seconds and ask again, for a fixed time. A *stall* is
a chunk that arrives after the audio before it would have finished playing.
Capacity is the largest N with p95 time to first audio within 1 s and at most
1% of replies stalled. Each level runs against first-in-first-out and
deadline scheduling in turn, so the two are compared in one run.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

from voice import audio, protocol

from . import measure
from .tables import table

TTFA_LIMIT = 1.0
STALL_LIMIT = 0.01
STALL_TOLERANCE = 0.005  # seconds: scheduling jitter, not a gap anyone hears


def question(user: int, turn: int) -> str:
    """Three sentences nobody asked before (the cache must not answer for the engine)."""
    return (
        f"This is user {user} on turn {turn}, asking about the weather today. "
        f"Could user {user} please hear the forecast for turn {turn} in full? "
        f"Thank you kindly from user {user}, turn {turn}."
    )


@dataclass
class Reply:
    ttfa: float | None = None
    stalls: int = 0
    stalled: float = 0.0  # seconds
    audio_seconds: float = 0.0
    playback_ends: float = 0.0  # time.perf_counter() when its audio would end
    error: str | None = None


@dataclass
class Level:
    replies: list[Reply] = field(default_factory=list)
    wall: float = 0.0
    cpu_seconds: float = 0.0

    def summary(self, cores: int) -> dict:
        times = [r.ttfa for r in self.replies if r.ttfa is not None]
        stalled = [r for r in self.replies if r.stalls]
        return {
            "replies": len(self.replies),
            "p50": measure.percentile(times, 50),
            "p95": measure.percentile(times, 95),
            "stalled_share": len(stalled) / len(self.replies) if self.replies else 1.0,
            "stalls": sum(r.stalls for r in self.replies),
            "stalled_ms": round(sum(r.stalled for r in self.replies) * 1000),
            "audio_per_wall": sum(r.audio_seconds for r in self.replies) / self.wall if self.wall else 0.0,
            "cpu": self.cpu_seconds / self.wall / cores if self.wall else 0.0,
            "errors": sum(bool(r.error) for r in self.replies),
        }


async def ask(socket, text: str) -> Reply:
    """One question and its reply, timing every chunk against the listener's playback."""
    reply = Reply()
    sent = time.perf_counter()
    await socket.send(json.dumps({"type": "query", "text": text}))
    async for frame in socket:
        now = time.perf_counter()
        if isinstance(frame, bytes):
            header, data = protocol.decode_audio_frame(frame)
            seconds = audio.pcm_duration(len(data), header["sample_rate"])
            if reply.ttfa is None:
                reply.ttfa = now - sent
                reply.playback_ends = now
            elif now > reply.playback_ends + STALL_TOLERANCE:
                reply.stalls += 1
                reply.stalled += now - reply.playback_ends
            reply.playback_ends = max(reply.playback_ends, now) + seconds
            reply.audio_seconds += seconds
            continue
        event = json.loads(frame)
        if event["type"] == "error":
            reply.error = event["code"]
        if event["type"] == "reply.done":
            if event["status"] != "complete":
                reply.error = reply.error or event["status"]
            return reply
    reply.error = reply.error or "closed"
    return reply


async def user(client, number: int, until: float, think: float, level: Level) -> None:
    conversation = client.new_conversation()
    url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{conversation}/"
    # People do not all start at the same instant.
    await asyncio.sleep(random.uniform(0, think))
    async with connect(url, additional_headers=client.headers(), max_size=None, open_timeout=60) as socket:
        turn = 0
        while time.perf_counter() < until:
            reply = await ask(socket, question(number, turn))
            level.replies.append(reply)
            turn += 1
            listening = max(0.0, reply.playback_ends - time.perf_counter())
            await asyncio.sleep(listening + think * random.uniform(0.8, 1.2))


async def run_level(client, users: int, seconds: float, think: float, pids: list[int]) -> Level:
    level = Level()
    cpu_before = sum(measure.tree_cpu_seconds(pid) for pid in pids)
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(user(client, n, until, think, level) for n in range(users)))
    level.wall = time.perf_counter() - started
    level.cpu_seconds = sum(measure.tree_cpu_seconds(pid) for pid in pids) - cpu_before
    return level


async def burst(client, users: int) -> list[float]:
    """Every user asks at the same moment: time to first audio of each."""
    conversations = [(client, client.new_conversation()) for _ in range(users)]
    texts = [question(1000 + n, 0) for n in range(users)]
    sockets = [
        await connect(
            f"ws://127.0.0.1:{c.server.port}/ws/chat/{conversation}/",
            additional_headers=c.headers(),
            max_size=None,
            open_timeout=60,
        )
        for c, conversation in conversations
    ]
    try:
        replies = await asyncio.gather(*(ask(socket, text) for socket, text in zip(sockets, texts, strict=True)))
    finally:
        for socket in sockets:
            await socket.close()
    return [r.ttfa for r in replies if r.ttfa is not None]


def first_segment(text: str) -> str:
    """The first segment the pipeline would synthesize for ``text``."""
    from django.conf import settings

    from voice.filters.speech import SpeechText
    from voice.sentences import SentenceSplitter

    splitter = SentenceSplitter(first_clause_chars=settings.VOICE_FIRST_CLAUSE_CHARS)
    speech = SpeechText()
    return (splitter.feed(speech.feed(text)) + splitter.feed(speech.flush()) + splitter.flush())[0].text


def ideal_burst(users: int, processes: int) -> list[float]:
    """Completion times of the burst's first segments, synthesized back to back on a pool of the same size alone."""
    from voice.pool import SlotPool
    from voice.scheduling import DEADLINE, Job

    pool = SlotPool(processes, processes=True, policy=DEADLINE, warm=[("synthesize", "piper", None)]).start()
    try:
        pool.wait_ready(120)
        segments = [first_segment(question(1000 + n, 0)) for n in range(users)]
        done: list[float] = []
        all_done = threading.Event()
        started = time.perf_counter()

        def deliver(item):
            if item[0] != "chunk":
                done.append(time.perf_counter() - started)
                if len(done) == len(segments):
                    all_done.set()

        for text in segments:
            pool.submit(Job(task=("synthesize", "piper", "", 1.0, text), due=0.0, deliver=deliver))
        all_done.wait(120)
        return sorted(done)
    finally:
        pool.close()


def capacity(levels: dict[int, dict]) -> int:
    ok = [n for n, s in levels.items() if s["p95"] <= TTFA_LIMIT and s["stalled_share"] <= STALL_LIMIT]
    return max(ok, default=0)


def tables(results: dict) -> list[tuple[str, str]]:
    rows = []
    for n in sorted(results["levels"]["fifo"]):
        for policy in ("fifo", "deadline"):
            s = results["levels"][policy][n]
            rows.append(
                [
                    n,
                    policy,
                    s["replies"],
                    round(s["p50"] * 1000),
                    round(s["p95"] * 1000),
                    f"{s['stalled_share']:.1%}",
                    s["stalls"],
                    s["stalled_ms"],
                    round(s["audio_per_wall"], 1),
                    f"{s['cpu']:.0%}",
                    s["errors"],
                ]
            )
    cap = results["capacity"]
    burst_row = results["burst"]
    return [
        (
            f"Conversations ({results['seconds']:.0f} s per level, think {results['think']:.0f} s; "
            f"capacity: first-in-first-out {cap['fifo']} users, deadline {cap['deadline']} users)",
            table(
                [
                    "users",
                    "scheduling",
                    "replies",
                    "p50 TTFA (ms)",
                    "p95 TTFA (ms)",
                    "replies stalled",
                    "stalls",
                    "stalled (ms)",
                    "audio s / wall s",
                    "CPU (of 2 cores)",
                    "errors",
                ],
                rows,
            ),
        ),
        (
            f"Burst: {burst_row['users']} users ask at the same moment (deadline scheduling)",
            table(
                ["p95 TTFA (ms)", "ideal schedule p95 (ms)", "ratio"],
                [
                    [
                        round(burst_row["p95"] * 1000),
                        round(burst_row["ideal_p95"] * 1000),
                        round(burst_row["p95"] / burst_row["ideal_p95"], 2),
                    ]
                ],
            ),
        ),
    ]
