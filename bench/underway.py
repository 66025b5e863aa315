"""Conversations already under way: every one past its history budget before anyone speaks.

Fresh conversations hid a tenfold slowdown: a model that reads the whole
history again on every turn is fast while histories are short, and that is all
a benchmark of new conversations sees. Here every user's conversation starts
with twelve earlier question-and-answer pairs (about 6,200 characters, past
VOICE_LLM_HISTORY_TOKENS), written straight into the database, so the model
has never read them, as after a restart or for a conversation written by
another process.

A level has three parts, all through the real server:

1. **Arrivals.** Each user asks once, starts staggered: the model reads the
   conversation's history for the first time (a cold read). The reply is
   cancelled at its first audio (only its start is measured), as a person may.
2. **Conversations.** The same users go on talking for the level's time
   (``bench.conversations``: listen, think, ask a new question). Every turn
   now continues a conversation the model knows, from its slot or from a saved
   state when there are more conversations than slots (20 users, 16 slots).
3. **A late arrival** (levels of 5 users and more): one more user, in a
   conversation never read, asks a third of the way in. Its first text against
   its prefill time alone, and the others' first text while it is being read.

Each reply's ``reply.done`` says how many prompt tokens the model read and
where its memory came from; the server's ``/metrics`` counters, read before
and after part 2, give the slot hits, restores and their cost.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from websockets.asyncio.client import connect

from . import conversations, measure
from .tables import table
from .talk import Talk

HISTORY_PAIRS = 12  # about 6,200 characters: past the history budget
# The smoke run's histories, past its budget (QUICK_HISTORY_TOKENS) as the full run's are past the default one.
QUICK_PAIRS = 6
# Room for a continuing turn's question, the answer before it and the question before that, with history to spare:
# with less, an answer heard whole leaves no history in the prompt, and the turn has nothing to find in memory.
QUICK_HISTORY_TOKENS = 400
ANSWER_READS = 2  # Talk.read_aloud texts an earlier answer is made of (about 450 characters)


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    conversation: conversations.Plan  # the talking part
    pairs: int = HISTORY_PAIRS  # earlier question-answer pairs of every conversation

    @classmethod
    def full(cls) -> Plan:
        return cls(levels=(1, 5, 10, 20), conversation=conversations.Plan.full())

    @classmethod
    def quick(cls) -> Plan:
        # Past a budget all the same: the smoke run's server has a small one (bench.__main__).
        return cls(levels=(1, 2), conversation=conversations.Plan.quick(), pairs=QUICK_PAIRS)


def history(talk: Talk, pairs: int = HISTORY_PAIRS) -> list[tuple[str, str]]:
    """Earlier pairs of new text: a question, and an answer of a few sentences."""
    return [(talk.ask(), " ".join(talk.read_aloud() for _ in range(ANSWER_READS))) for _ in range(pairs)]


def seed(site, count: int, talk: Talk, pairs: int = HISTORY_PAIRS) -> list[int]:
    """``count`` conversations of the demo user, each with its history stored: the model has read none of it."""
    histories = json.dumps([history(talk, pairs) for _ in range(count)])
    code = f"""
import json
from django.contrib.auth import get_user_model
from voice.models import Conversation, Message
owner = get_user_model().objects.get(username="demo")
ids = []
for pairs in json.loads({histories!r}):
    conversation = Conversation.objects.create(owner=owner, title=pairs[0][0][:40])
    for question, answer in pairs:
        query = Message.objects.create(conversation=conversation, role="user", text=question)
        Message.objects.create(conversation=conversation, role="assistant", text=answer, reply_to=query)
    ids.append(conversation.pk)
print(json.dumps(ids))
"""
    return json.loads(site.shell(code).splitlines()[-1])


async def arrive(client, conversation: int, text: str, offset: float) -> conversations.Reply:
    """One user comes back to a conversation and asks; the reply is cancelled at its first audio."""
    await asyncio.sleep(offset)
    reply = conversations.Reply()
    url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{conversation}/"
    try:
        async with (
            connect(url, additional_headers=client.headers(), max_size=None, open_timeout=60) as socket,
            asyncio.timeout(conversations.REPLY_TIMEOUT),
        ):
            heard = asyncio.Event()
            asking = asyncio.create_task(conversations.ask(socket, text, reply, heard))
            hearing = asyncio.create_task(heard.wait())
            await asyncio.wait({asking, hearing}, return_when=asyncio.FIRST_COMPLETED)
            hearing.cancel()
            if not asking.done():
                await socket.send(json.dumps({"type": "cancel"}))
            await asking
    except (OSError, TimeoutError) as exc:
        reply.error = reply.error or type(exc).__name__
    if reply.error in ("cancelled", "interrupted"):
        reply.error = None  # we stopped it
    return reply


async def arrivals(client, ids: list[int], talk: Talk, stagger: float, rng) -> list[conversations.Reply]:
    offsets = [(n + rng.random()) * stagger / len(ids) for n in range(len(ids))]
    return list(await asyncio.gather(*(arrive(client, c, talk.ask(), o) for c, o in zip(ids, offsets, strict=True))))


class QuestionTokens:
    """How many of the model's tokens a question is (its tokenizer alone, in this process)."""

    def __init__(self) -> None:
        import llama_cpp

        from voice.responders.local import model_path

        self._model = llama_cpp.Llama(str(model_path()), vocab_only=True, verbose=False)

    def __call__(self, text: str) -> int:
        return len(self._model.tokenize(text.encode(), add_bos=False, special=False))


def _counter_delta(before: dict, after: dict, name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def _figures(replies: list[conversations.Reply], tokens: QuestionTokens | None = None) -> dict:
    times = [r.first_text for r in replies if r.first_text is not None]
    audio = [r.ttfa for r in replies if r.ttfa is not None]
    read = [r.prompt_read for r in replies if r.prompt_read is not None]
    # Read beyond the question itself: its chat markup, the end of the last reply, or history read again.
    extra = [r.prompt_read - tokens(r.question) for r in replies if r.prompt_read is not None and tokens and r.question]
    return {
        "extra_median": measure.median(extra),
        "extra_min": min(extra, default=float("nan")),
        "extra_max": max(extra, default=float("nan")),
        "replies": len(replies),
        "first_text_p50": measure.percentile(times, 50),
        "first_text_p95": measure.percentile(times, 95),
        "p50": measure.percentile(audio, 50),
        "p95": measure.percentile(audio, 95),
        "read_median": measure.median(read),
        "read_max": max(read, default=float("nan")),
        "errors": sum(bool(r.error) for r in replies),
    }


def measure_level(server, client, site, token: str, users: int, plan: Plan, talk: Talk, tokens: QuestionTokens) -> dict:
    rng = talk.rng
    level_plan = plan.conversation
    ids = seed(site, users + (1 if users >= 5 else 0), talk, plan.pairs)
    late_id = ids.pop() if users >= 5 else None
    arrived = asyncio.run(arrivals(client, ids, talk, level_plan.stagger, rng))

    async def talking():
        level_task = asyncio.ensure_future(
            conversations.run_level(client, users, level_plan, talk.ask, rng, [server.process.pid], ids)
        )
        late = None
        if late_id is not None:
            late = await arrive(client, late_id, talk.ask(), level_plan.seconds_for(users) / 3)
        return await level_task, late

    before = measure.server_counters(server, token)
    level, late = asyncio.run(talking())
    after = measure.server_counters(server, token)
    level.cache_hits = _counter_delta(before, after, conversations.CACHE_HITS)
    level.cache_misses = _counter_delta(before, after, conversations.CACHE_MISSES)

    by_memory = {
        kind: _figures([r for r in level.replies if r.memory == kind]) for kind in ("slot", "restored", "cold")
    }
    restores = _counter_delta(before, after, "voice_llm_prompts_total{memory=restored}")
    summary = {
        "arrivals": _figures(arrived),
        "talking": level.summary(measure.machine()["cores"] or 1) | _figures(level.replies, tokens),
        "by_memory": by_memory,
        "slot_hits": _counter_delta(before, after, "voice_llm_prompts_total{memory=slot}"),
        "restores": restores,
        "restore_ms": 1000 * _counter_delta(before, after, "voice_llm_state_restore_seconds_total") / restores
        if restores
        else float("nan"),
        "cold": _counter_delta(before, after, "voice_llm_prompts_total{memory=cold}"),
        "state_failures": _counter_delta(before, after, "voice_llm_state_failures_total"),
    }
    if late is not None:
        # The others' turns asked while the late arrival's history was being read.
        end = late.sent_at + (late.first_text or 0.0)
        meanwhile = [r for r in level.replies if late.sent_at <= r.sent_at <= end]
        summary["late"] = {
            "first_text": late.first_text,
            "read": late.prompt_read,
            "memory": late.memory,
            "error": late.error,
            "others_meanwhile": _figures(meanwhile),
        }
    return summary


def in_the_page(server, conversation: int, questions: list[str]) -> dict | None:
    """Typed question to first sound in Chromium, one user, in a conversation under way.

    The page times it itself (``window.voiceLatency``: Enter to the first chunk it plays). Each question is
    asked once the reply before it has started to sound, as a person cutting in does. None without chromium.
    """
    from pathlib import Path

    from voice.tests.pages import CHROMIUM, CHROMIUM_ARGS, log_in, send

    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            log_in(page, server, next_path=f"/c/{conversation}/")
            for n, question in enumerate(questions, start=1):
                send(page, question)
                page.wait_for_function(f"window.voiceLatency.length >= {n}", timeout=90_000)
            latencies = [entry["ms"] / 1000 for entry in page.evaluate("window.voiceLatency")]
        finally:
            browser.close()
    return {"runs": len(latencies), "p50": measure.median(latencies), "all": latencies}


def prefill_rate(results: dict) -> float:
    """Prompt tokens read a second, from the one-user level's cold arrival (nothing else running)."""
    alone = results["levels"].get(1, {}).get("arrivals", {})
    read, first = alone.get("read_median"), alone.get("first_text_p50")
    return read / first if read and first and read == read and first == first else float("nan")


def _ms(seconds) -> str | int:
    return "-" if seconds is None or seconds != seconds else round(seconds * 1000)


def _n(value) -> str | int:
    return "-" if value is None or value != value else round(value)


def tables(results: dict) -> list[tuple[str, str]]:
    levels = results["levels"]
    sections = []
    alone = levels.get(1, {}).get("talking", {}).get("p95", float("nan"))
    rows = []
    for users, s in levels.items():
        t = s["talking"]
        rows.append(
            [
                users,
                t["replies"],
                _ms(t["first_text_p50"]),
                _ms(t["first_text_p95"]),
                _ms(t["p50"]),
                _ms(t["p95"]),
                round(t["p95"] / alone, 2) if alone == alone and alone else "-",
                f"{t['stalled_share']:.1%}",
                t["errors"],
                f"{_n(t['read_median'])} / {_n(t['read_max'])}",
                f"{_n(t['extra_median'])} / {_n(t['extra_max'])}",
                _n(s["slot_hits"]),
                f"{_n(s['restores'])} ({_n(s['restore_ms'])} ms)",
                _n(s["cold"]),
                conversations.hit_rate(t),
            ]
        )
    sections.append(
        (
            "Conversations already under way, local model: every conversation past its history budget "
            f"({results['pairs']} earlier pairs), continuing turns",
            table(
                [
                    "users",
                    "replies",
                    "p50 first text (ms)",
                    "p95 first text (ms)",
                    "p50 first audio (ms)",
                    "p95 first audio (ms)",
                    "p95 / alone",
                    "replies stalled",
                    "errors",
                    "prompt tokens read, median / max",
                    "of which not the question, median / max",
                    "slot hits",
                    "restores (mean cost)",
                    "cold reads",
                    "segment cache hits",
                ],
                rows,
            ),
        )
    )
    rows = []
    for users, s in levels.items():
        a = s["arrivals"]
        rows.append(
            [users, a["replies"], _ms(a["first_text_p50"]), _ms(a["first_text_p95"]), _n(a["read_median"]), a["errors"]]
        )
    rate = prefill_rate(results)
    sections.append(
        (
            "Arrivals: the first turn in a conversation the model has never read (its history read once, "
            f"in pieces; prompt reading alone: {_n(rate)} tokens/s)",
            table(
                ["users", "replies", "p50 first text (ms)", "p95 first text (ms)", "prompt tokens read", "errors"], rows
            ),
        )
    )
    rows = []
    for users, s in levels.items():
        late = s.get("late")
        if not late:
            continue
        prefill = late["read"] / rate if late["read"] and rate == rate else float("nan")
        others = late["others_meanwhile"]
        rows.append(
            [
                users,
                _ms(late["first_text"]),
                _n(late["read"]),
                _ms(prefill),
                others["replies"],
                _ms(others["first_text_p95"]),
                _ms(s["talking"]["first_text_p95"]),
                late["error"] or "",
            ]
        )
    if rows:
        sections.append(
            (
                "A late arrival: one more conversation never read, a third of the way into the level",
                table(
                    [
                        "users",
                        "its first text (ms)",
                        "prompt tokens read",
                        "its prefill alone (ms)",
                        "others' turns meanwhile",
                        "their p95 first text (ms)",
                        "level's p95 first text (ms)",
                        "error",
                    ],
                    rows,
                ),
            )
        )
    page = results.get("page")
    if page:
        later = page["all"][1:]  # the first question of the page reads the conversation's history (cold)
        sections.append(
            (
                "Typed question to first sound in Chromium, one user, a conversation under way",
                table(
                    ["questions", "first (history read) (ms)", "p50 of the others (ms)"],
                    [[page["runs"], _ms(page["all"][0]), _ms(measure.median(later))]],
                ),
            )
        )
    rows = []
    for users, s in levels.items():
        for kind, f in s["by_memory"].items():
            if f["replies"]:
                rows.append([users, kind, f["replies"], _ms(f["first_text_p50"]), _ms(f["first_text_p95"])])
    if rows:
        sections.append(
            (
                "Continuing turns by where the model's memory of the conversation was",
                table(["users", "memory", "replies", "p50 first text (ms)", "p95 first text (ms)"], rows),
            )
        )
    return sections
