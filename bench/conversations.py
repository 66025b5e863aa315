"""The benchmark that defines capacity: conversations held the way people hold them, on new text.

N virtual users, their starts spread out, each ask a question, receive the
reply, wait until its audio would have finished playing, think about 3 s and
ask again, for a fixed time per level. Two responders, each behind a Daphne of
its own: ``readaloud`` speaks three new sentences back (synthesis alone is the
load) and ``local`` has the bundled SmolLM2 answer a new one-sentence question
(the model and synthesis share the cores).

Every text is new (``bench.talk``): an earlier version repeated a clause in
every question, so the segment cache answered it and the benchmark measured
the cache. The cache stays on at its default size, and the server's own
counters (``GET /metrics``), read before and after each level, give the level's
hit rate: the proof, printed beside the figures.

A *stall* is a chunk that arrives after the audio before it would have
finished playing. Capacity is the largest N with p95 time to first audio within
1 s and at most 1% of replies stalled.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from voice import audio, protocol

from . import measure
from .tables import table
from .talk import Talk, segments

TTFA_LIMIT = 1.0
STALL_LIMIT = 0.01
STALL_TOLERANCE = 0.005  # seconds: scheduling jitter, not a gap anyone hears
# A reply that has not finished by then never will: the level must end anyway.
REPLY_TIMEOUT = 120.0

RESPONDERS = {
    # VOICE_RESPONDER: (the Talk method that writes what users say, how the table calls it)
    "readaloud": ("read_aloud", "read-aloud (three new sentences spoken back)"),
    "local": ("ask", "local model (SmolLM2 answers a new one-sentence question)"),
}

CACHE_HITS = "voice_tts_cache_hits_total"
CACHE_MISSES = "voice_tts_cache_misses_total"


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    seconds: float  # users ask during this long at each level
    alone_seconds: float  # the 1-user level: the reference of "p95 / alone", it needs more than a few replies
    think: float  # after the reply has played, before the next question
    stagger: float  # the users' first questions are spread over this long

    @classmethod
    def full(cls) -> Plan:
        # About 12 minutes for both responders: a level lasts its time plus its last replies, which the
        # listener paces (a reply ends about when its audio does); at 20 users the local model's last
        # replies also queue, and that level took 2 minutes on a busy machine.
        return cls(levels=(1, 3, 5, 10, 20), seconds=30.0, alone_seconds=60.0, think=3.0, stagger=10.0)

    @classmethod
    def quick(cls) -> Plan:
        return cls(levels=(1, 2), seconds=4.0, alone_seconds=4.0, think=1.0, stagger=1.0)

    def seconds_for(self, users: int) -> float:
        return self.alone_seconds if users == 1 else self.seconds


@dataclass
class Reply:
    ttfa: float | None = None  # query sent -> first audio frame
    first_text: float | None = None  # query sent -> first reply.delta
    stalls: int = 0
    stalled: float = 0.0  # seconds
    audio_seconds: float = 0.0
    playback_ends: float = 0.0  # time.perf_counter() when its audio would end
    queued: bool = False  # the server said the reply waits its turn
    error: str | None = None
    question: str = ""
    sent_at: float = 0.0  # time.perf_counter() when the query was sent
    turn: int = 0  # of this user in this level, from 0
    # From reply.done: the model's prompt tokens, how many it had to read, and where its memory came from.
    prompt_tokens: int | None = None
    prompt_read: int | None = None
    memory: str | None = None


@dataclass
class Level:
    replies: list[Reply] = field(default_factory=list)
    wall: float = 0.0
    cpu_seconds: float = 0.0
    cache_hits: float = 0.0
    cache_misses: float = 0.0

    def summary(self, cores: int) -> dict:
        times = [r.ttfa for r in self.replies if r.ttfa is not None]
        texts = [r.first_text for r in self.replies if r.first_text is not None]
        stalled = [r for r in self.replies if r.stalls]
        said = self.cache_hits + self.cache_misses  # segments
        return {
            "replies": len(self.replies),
            "p50": measure.percentile(times, 50),
            "p95": measure.percentile(times, 95),
            "first_text_p50": measure.percentile(texts, 50),
            "first_text_p95": measure.percentile(texts, 95),
            "stalled_share": len(stalled) / len(self.replies) if self.replies else 1.0,
            "stalls": sum(r.stalls for r in self.replies),
            "stalled_ms": round(sum(r.stalled for r in self.replies) * 1000),
            "audio_per_wall": sum(r.audio_seconds for r in self.replies) / self.wall if self.wall else 0.0,
            "cpu": self.cpu_seconds / self.wall / cores if self.wall else 0.0,
            "errors": sum(bool(r.error) for r in self.replies),
            "queued": sum(r.queued for r in self.replies),
            "cache_hits": round(self.cache_hits),
            "cache_misses": round(self.cache_misses),
            "cache_hit_rate": self.cache_hits / said if said else float("nan"),
            "wall": self.wall,
        }


async def ask(socket, text: str, reply: Reply, heard: asyncio.Event | None = None) -> None:
    """One question and its reply, timing every chunk against the listener's playback (fills ``reply``).

    ``heard`` is set at the first audio.
    """
    reply.question = text
    sent = reply.sent_at = time.perf_counter()
    await socket.send(json.dumps({"type": "query", "text": text}))
    async for frame in socket:
        now = time.perf_counter()
        if isinstance(frame, bytes):
            chunk = protocol.AudioData.from_frame(frame)
            header, data = chunk.header, chunk.data
            seconds = audio.pcm_duration(len(data), header["sample_rate"])
            if reply.ttfa is None:
                reply.ttfa = now - sent
                reply.playback_ends = now
                if heard is not None:
                    heard.set()
            elif now > reply.playback_ends + STALL_TOLERANCE:
                reply.stalls += 1
                reply.stalled += now - reply.playback_ends
            reply.playback_ends = max(reply.playback_ends, now) + seconds
            reply.audio_seconds += seconds
            continue
        event = json.loads(frame)
        kind = event["type"]
        if kind == "reply.delta" and reply.first_text is None:
            reply.first_text = now - sent
        elif kind == "queued":
            reply.queued = True
        elif kind == "error":
            reply.error = event["code"]
        elif kind == "reply.done":
            metrics = event.get("metrics") or {}
            reply.prompt_tokens = metrics.get("prompt_tokens")
            reply.prompt_read = metrics.get("prompt_tokens_read")
            reply.memory = metrics.get("model_memory")
            if event["status"] != "complete":
                reply.error = reply.error or event["status"]
            return
    reply.error = reply.error or "closed"


async def user(
    client, conversation: int, say: Callable[[], str], offset: float, until: float, think: float, rng, level: Level
) -> None:
    """One person: asks, listens to the whole reply, thinks, asks again, until the level's time is up."""
    await asyncio.sleep(offset)
    url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{conversation}/"
    reply = None
    turns = 0
    try:
        async with connect(url, additional_headers=client.headers(), max_size=None, open_timeout=60) as socket:
            while True:
                reply = Reply(turn=turns)
                turns += 1
                level.replies.append(reply)
                async with asyncio.timeout(REPLY_TIMEOUT):
                    await ask(socket, say(), reply)
                if reply.error == "closed":
                    return
                next_at = max(reply.playback_ends, time.perf_counter()) + think * rng.uniform(0.8, 1.2)
                if next_at >= until:
                    return  # nothing more is asked: no point sitting through the last reply
                await asyncio.sleep(next_at - time.perf_counter())
    except (OSError, TimeoutError, WebSocketException) as exc:
        # The user gives up (as a person would); the reply counts as an error.
        if reply is None:  # not even connected
            reply = Reply()
            level.replies.append(reply)
        reply.error = reply.error or type(exc).__name__


async def run_level(
    client, users: int, plan: Plan, say: Callable[[], str], rng, pids: list[int], conversations: list[int] = ()
) -> Level:
    """``users`` people talking for the level's time: in new conversations, or in ``conversations`` given."""
    # Made before the clock starts: this is page loading, not the load under test.
    conversations = list(conversations) or [client.new_conversation() for _ in range(users)]
    level = Level()
    cpu_before = sum(measure.tree_cpu_seconds(pid) for pid in pids)
    started = time.perf_counter()
    until = started + plan.seconds_for(users)
    # People do not all start at the same instant: spread evenly over the stagger, each a little off the grid
    # (a burst start would repeat the burst measurement below, not a conversation).
    offsets = [(n + rng.random()) * min(plan.stagger, plan.seconds_for(users)) / users for n in range(users)]
    await asyncio.gather(
        *(
            user(client, conversation, say, offset, until, plan.think, rng, level)
            for conversation, offset in zip(conversations, offsets, strict=True)
        )
    )
    level.wall = time.perf_counter() - started
    level.cpu_seconds = sum(measure.tree_cpu_seconds(pid) for pid in pids) - cpu_before
    return level


def measure_level(server, client, token: str, users: int, plan: Plan, talk: Talk, responder: str) -> dict:
    """One level against one server, with the server's segment cache hits and misses during it."""
    say = getattr(talk, RESPONDERS[responder][0])
    before = measure.server_counters(server, token)
    level = asyncio.run(run_level(client, users, plan, say, talk.rng, [server.process.pid]))
    after = measure.server_counters(server, token)
    level.cache_hits = after.get(CACHE_HITS, 0.0) - before.get(CACHE_HITS, 0.0)
    level.cache_misses = after.get(CACHE_MISSES, 0.0) - before.get(CACHE_MISSES, 0.0)
    return level.summary(measure.machine()["cores"] or 1)


def relative_to_alone(levels: dict[int, dict]) -> None:
    """Add "p95_vs_alone" to each level: its p95 first audio over the one-user level's of the same run."""
    alone = levels.get(1, {}).get("p95", float("nan"))
    for summary in levels.values():
        summary["p95_vs_alone"] = summary["p95"] / alone if alone else float("nan")


async def burst(client, texts: list[str]) -> list[float]:
    """Every user asks at the same moment: time to first audio of each."""
    conversations = [(client, client.new_conversation()) for _ in texts]
    exchanges, _wall = await measure.concurrent(conversations, texts)
    return [e.ttfa for e in exchanges if e.ttfa is not None]


def ideal_burst(texts: list[str], processes: int) -> list[float]:
    """Completion times of the first segments of ``texts``, back to back on a pool of the same size alone."""
    from voice.pool import Output, SlotPool, Work
    from voice.scheduling import DEADLINE, Job
    from voice.tts.service import FAILURES, synthesize_in_slot, warm_up

    warm = [Work.of(warm_up, "piper", None, True)]
    pool = SlotPool(processes, processes=True, policy=DEADLINE, failures=FAILURES, warm=warm).start()
    try:
        pool.wait_ready(120)
        firsts = [segments(text)[0] for text in texts]
        done: list[float] = []
        all_done = threading.Event()
        started = time.perf_counter()

        def deliver(item):
            if not isinstance(item, Output):
                done.append(time.perf_counter() - started)
                if len(done) == len(firsts):
                    all_done.set()

        for text in firsts:
            pool.submit(Job(work=Work.of(synthesize_in_slot, "piper", "", 1.0, text), due=0.0, deliver=deliver))
        all_done.wait(120)
        return sorted(done)
    finally:
        pool.close()


def capacity(levels: dict[int, dict]) -> int:
    ok = [n for n, s in levels.items() if s["p95"] <= TTFA_LIMIT and s["stalled_share"] <= STALL_LIMIT]
    return max(ok, default=0)


def _ms(seconds: float):
    return "-" if seconds != seconds else round(seconds * 1000)  # NaN: no reply got that far


def hit_rate(summary: dict) -> str:
    said = summary["cache_hits"] + summary["cache_misses"]
    return f"{summary['cache_hit_rate']:.1%} of {said}" if said else "no segments"


def tables(results: dict) -> list[tuple[str, str]]:
    plan = results["plan"]
    sections = []
    for responder, levels in results["responders"].items():
        local = responder == "local"
        queued = any(s["queued"] for s in levels.values())
        headers = ["users", "replies", "p50 first audio (ms)", "p95 first audio (ms)", "p95 / alone"]
        headers += ["replies stalled", "errors", "segment cache hits", f"CPU (of {results['cores']} cores)"]
        headers += ["p50 first text (ms)", "p95 first text (ms)"] if local else []
        headers += ["replies queued"] if queued else []
        rows = []
        for n, s in levels.items():
            row = [n, s["replies"], _ms(s["p50"]), _ms(s["p95"]), round(s["p95_vs_alone"], 2)]
            row += [f"{s['stalled_share']:.1%}", s["errors"], hit_rate(s), f"{s['cpu']:.0%}"]
            row += [_ms(s["first_text_p50"]), _ms(s["first_text_p95"])] if local else []
            row += [s["queued"]] if queued else []
            rows.append(row)
        sections.append(
            (
                f"Conversations, {RESPONDERS[responder][1]}: {plan['seconds']:.0f} s per level "
                f"({plan['alone_seconds']:.0f} s alone), think {plan['think']:.0f} s; "
                f"capacity {results['capacity'][responder]} users",
                table(headers, rows),
            )
        )
    if "burst" in results:
        burst_row = results["burst"]
        sections.append(
            (
                f"Burst: {burst_row['users']} users ask at the same moment (read-aloud, new text)",
                table(
                    ["p95 first audio (ms)", "ideal schedule p95 (ms)", "ratio"],
                    [
                        [
                            _ms(burst_row["p95"]),
                            _ms(burst_row["ideal_p95"]),
                            round(burst_row["p95"] / burst_row["ideal_p95"], 2),
                        ]
                    ],
                ),
            )
        )
    return sections
