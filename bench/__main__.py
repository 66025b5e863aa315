"""Run the benchmarks: `python -m bench` (full, about 40 minutes) or `python -m bench --quick` (seconds).

Starts a real Daphne (the project plus the baseline consumer) on a scratch
site, measures over real WebSockets on loopback, prints tables and writes
docs/benchmarks.md with plots. Every ratio comes from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from . import abuse, conversations, handsfree, llm, measure, speech_text, stt, supervision, trimming, underway
from .piper_http import PiperHttpServer, timed_post
from .report import Report
from .talk import Talk

DOCS = Path(__file__).resolve().parents[1] / "docs"


SECTIONS = (
    "wire",
    "llm",
    "conversations",
    "underway",
    "abuse",
    "supervision",
    "stt",
    "handsfree",
    "speech_text",
    "engine",
)


def run(
    quick: bool = False, out: Path | None = None, only: set[str] | None = None, levels: tuple[int, ...] = ()
) -> dict:
    """Every section, or ``only`` those named (SECTIONS); ``levels``: conversation levels instead of the plan's."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceproject.settings")
    import django

    django.setup()
    from voice.tts import get_engine

    def wanted(section: str) -> bool:
        return only is None or section in only

    repeats = 1 if quick else 7
    lengths = [1, 3] if quick else [1, 3, 10]
    results: dict = {"machine": measure.machine(), "quick": quick, "repeats": repeats}

    engine = get_engine("piper")
    if wanted("wire") or wanted("engine"):
        engine.prepare()
    if wanted("wire"):
        results.update(_wire(engine, repeats, lengths, [1, 2] if quick else [1, 5, 10, 20, 50]))
    if wanted("llm"):
        results["llm"] = _local_model(repeats, quick)
    if wanted("speech_text"):
        results["speech_text"] = speech_text.filter_overhead(10 if quick else 50)
    if wanted("stt"):
        results["stt"] = stt.measure(quick)
        if "llm" in results:  # measured on the local model's server
            results["stt"]["wire"] = results["llm"].pop("speak")
    if wanted("handsfree"):
        results["handsfree"] = _hands_free(repeats, quick)
    if wanted("conversations"):
        results["conversations"] = _conversations(quick, levels)
    if wanted("underway"):
        results["underway"] = _underway(quick, levels)
    if wanted("abuse"):
        results["abuse"] = _abuse(quick)
    if wanted("supervision"):
        results["supervision"] = _supervision(repeats, quick)
    if wanted("engine"):
        # Engine speed, in this process.
        results["rtf"] = {
            name: measure.real_time_factor(engine, measure.reply_text(n), repeats)
            for name, n in (("short (1 sentence)", 1), ("long (10 sentences)", 10))
        }
    report = Report(results)
    print(report.text())
    if out is not None:
        report.write(out)
    return results


def _wire(engine, repeats: int, lengths: list[int], levels: list[int]) -> dict:
    """Time to first audio against the baseline, all-at-once concurrency, wire cost, the speech API."""
    from voice.tests.servers import ChatClient, DaphneServer, Site

    with tempfile.TemporaryDirectory(prefix="voice-bench-") as scratch:
        # No segment cache here: these figures are about synthesis (the cache has its own below).
        site = Site(Path(scratch), database="sqlite", VOICE_TTS_DISPATCH="inline", VOICE_TTS_CACHE_MB="0").setup()
        # The baseline's single message outgrows Daphne's 1 MiB default for
        # long replies (our chunks stay under 256 KiB): lift the cap for it.
        server = DaphneServer(
            site, application="bench.asgi:application", options=("--websocket-max-message-size", "0")
        ).start()
        piper_http = PiperHttpServer(site).start()
        try:
            client = ChatClient(server)
            results = asyncio.run(_over_the_wire(client, server, engine, repeats, lengths, levels))
            api_key = site.manage("create_api_key", "demo").strip().splitlines()[-1]
            results["http"] = _speech_api_vs_piper(server, piper_http, api_key, repeats, lengths)
        finally:
            server.stop()
            piper_http.stop()
            site.destroy()
    return results


async def _over_the_wire(client, server, engine, repeats, lengths, levels) -> dict:
    conversation = client.new_conversation()
    # Warm both paths (model load, first connections).
    await measure.ours(client, conversation, measure.reply_text(1))
    await measure.baseline(server, measure.reply_text(1))

    ttfa: dict[int, dict[str, float]] = {}
    for n in lengths:
        text = measure.reply_text(n)
        floor = measure.engine_floor(engine, text, repeats)
        ours, theirs = [], []
        for _ in range(repeats):  # alternate, so drift hits both alike
            ours.append(await measure.ours(client, conversation, text))
            theirs.append(await measure.baseline(server, text))
        ttfa[n] = {
            "floor": floor,
            "ours": measure.median([e.ttfa for e in ours]),
            "baseline": measure.median([e.ttfa for e in theirs]),
            "ours_total": measure.median([e.total for e in ours]),
            "errors": sum(bool(e.error) for e in ours + theirs),
        }

    concurrency = {}
    for level in levels:
        conversations = [(client, client.new_conversation()) for _ in range(level)]
        with measure.PeakMemory(server.process.pid) as memory:
            exchanges, wall = await measure.concurrent(conversations, measure.reply_text(3))
        times = [e.ttfa for e in exchanges if e.ttfa is not None]
        concurrency[level] = {
            "p50": measure.percentile(times, 50),
            "p95": measure.percentile(times, 95),
            "audio_per_wall": sum(e.audio_seconds for e in exchanges) / wall,
            "errors": sum(bool(e.error) for e in exchanges),
            "lost": sum(e.lost for e in exchanges),
            "peak_mib": memory.peak_kib / 1024,
        }

    wire_text = measure.reply_text(lengths[-1])
    binary = await measure.ours(client, conversation, wire_text)
    base64_json = await measure.ours(client, conversation, wire_text, query="audio=base64")
    pcm = b"".join(chunk.data for chunk in engine.synthesize(wire_text))
    wire = {
        "raw PCM16 (reference)": measure.PCM_BYTES_PER_SECOND,
        "binary frames (ours)": binary.audio_frame_bytes / binary.audio_seconds,
        "base64 JSON (?audio=base64)": base64_json.audio_frame_bytes / base64_json.audio_seconds,
        "mp3, 64 kbit/s (lameenc)": measure.mp3_bytes_per_second(pcm),
        "whole reply incl. text events, binary": binary.wire_bytes / binary.audio_seconds,
    }
    return {"ttfa": ttfa, "concurrency": concurrency, "wire": wire}


def _conversations(quick: bool, levels: tuple[int, ...] = ()) -> dict:
    """The load benchmark: both responders side by side, new text every time, the segment cache on."""
    from django.conf import settings

    from voice.tests.servers import ChatClient, DaphneServer, Site

    plan = conversations.Plan.quick() if quick else conversations.Plan.full()
    if levels:
        plan = dataclasses.replace(plan, levels=levels)
    talk = Talk()
    token = secrets.token_hex(16)
    responders = list(conversations.RESPONDERS)
    results: dict = {
        "plan": dataclasses.asdict(plan),
        "nonce": talk.nonce,  # Talk(nonce) says this run's texts again
        "cores": measure.machine()["cores"],
        "responders": {responder: {} for responder in responders},
    }
    with tempfile.TemporaryDirectory(prefix="voice-bench-load-") as scratch:
        servers, sites = {}, []
        try:
            for responder in responders:
                site = Site(
                    Path(scratch) / responder,
                    database="sqlite",
                    VOICE_RESPONDER=responder,
                    VOICE_METRICS_TOKEN=token,
                    # The segment cache stays on at its default size (its hit rate is a result), but
                    # in this process only, even where REDIS_URL is set: a hit can only come from this run.
                    VOICE_TTS_CACHE_SHARED="0",
                ).setup()
                sites.append(site)
                servers[responder] = DaphneServer(site).start()
            clients = {responder: ChatClient(server) for responder, server in servers.items()}
            for responder, client in clients.items():  # warm each through the real path (model, voice, socket)
                say = getattr(talk, conversations.RESPONDERS[responder][0])
                asyncio.run(measure.ours(client, client.new_conversation(), say()))
            for users in plan.levels:
                for responder in responders:  # alternate, so that drift hits both alike
                    summary = conversations.measure_level(
                        servers[responder], clients[responder], token, users, plan, talk, responder
                    )
                    results["responders"][responder][users] = summary
                    print(f"  {users} users, {responder}: {summary}", file=sys.stderr)
            burst_users = 4 if quick else 20
            texts = [talk.read_aloud() for _ in range(burst_users)]
            times = asyncio.run(conversations.burst(clients["readaloud"], texts))
            ideal = conversations.ideal_burst(texts, processes=settings.VOICE_TTS_PROCESSES or 1)
            results["burst"] = {
                "users": burst_users,
                "p95": measure.percentile(times, 95),
                "ideal_p95": measure.percentile(ideal, 95),
            }
        finally:
            for server in servers.values():
                server.stop()
            for site in sites:
                site.destroy()
    for by_users in results["responders"].values():
        conversations.relative_to_alone(by_users)
    results["capacity"] = {
        responder: conversations.capacity(by_users) for responder, by_users in results["responders"].items()
    }
    return results


def _underway(quick: bool, levels: tuple[int, ...] = ()) -> dict:
    """Conversations already under way, local model: every one past its history budget before anyone speaks."""
    from voice.tests.servers import ChatClient, DaphneServer, Site

    plan = underway.Plan.quick() if quick else underway.Plan.full()
    if levels:
        plan = dataclasses.replace(plan, levels=levels)
    talk = Talk()
    token = secrets.token_hex(16)
    results: dict = {"levels": {}, "nonce": talk.nonce, "pairs": plan.pairs}
    with tempfile.TemporaryDirectory(prefix="voice-bench-underway-") as scratch:
        budget = {"VOICE_LLM_HISTORY_TOKENS": str(underway.QUICK_HISTORY_TOKENS)} if quick else {}
        site = Site(
            Path(scratch),
            database="sqlite",
            VOICE_RESPONDER="local",
            VOICE_METRICS_TOKEN=token,
            VOICE_TTS_CACHE_SHARED="0",
            **budget,
        ).setup()
        server = DaphneServer(site).start()
        try:
            client = ChatClient(server)
            asyncio.run(measure.ours(client, client.new_conversation(), talk.ask()))  # warm the model and the voice
            tokens = underway.QuestionTokens()
            for users in plan.levels:
                summary = underway.measure_level(server, client, site, token, users, plan, talk, tokens)
                results["levels"][users] = summary
                print(f"  {users} users under way: {summary['talking']}", file=sys.stderr)
            # Typed question to first sound, in the page: the first question reads the history, the others not.
            (conversation,) = underway.seed(site, 1, talk, plan.pairs)
            results["page"] = underway.in_the_page(server, conversation, [talk.ask() for _ in range(2 if quick else 6)])
        finally:
            server.stop()
            site.destroy()
    return results


def _abuse(quick: bool) -> dict:
    """Five users talking, calm and beside an abusive account, on one Daphne with the default limits."""
    from voice.tests.servers import PASSWORD, ChatClient, DaphneServer, Site

    plan = conversations.Plan.quick() if quick else conversations.Plan.full()
    with tempfile.TemporaryDirectory(prefix="voice-bench-abuse-") as scratch:
        # The five users share one account, so its chat limit and what one account may hold at once stay off
        # (as on test sites): the abuser meets the rate limits and queue bounds at their defaults, not the
        # per-account shares of issue 27 (not measured here yet). No segment cache: filling it (up to its size)
        # would look like memory growth, and the question is whether abuse makes the server grow.
        site = Site(Path(scratch), database="sqlite", VOICE_TTS_CACHE_MB="0").setup()
        site.manage("demouser", "--username", "abuser", "--password", PASSWORD)
        server = DaphneServer(site).start()
        try:
            client, abuser = ChatClient(server), ChatClient(server, username="abuser")
            talk = Talk()
            asyncio.run(measure.ours(client, client.new_conversation(), talk.read_aloud()))
            return abuse.measure_abuse(server, client, abuser, plan, talk)
        finally:
            server.stop()
            site.destroy()


def _supervision(repeats: int, quick: bool) -> dict:
    from voice.tests.servers import ChatClient, DaphneServer, Site

    results = {}
    with tempfile.TemporaryDirectory(prefix="voice-bench-supervision-") as scratch:
        site = Site(
            Path(scratch), database="sqlite", VOICE_TTS_ENGINE="bench.engines.HangOnCue", VOICE_TTS_JOB_TIMEOUT="30"
        ).setup()
        server = DaphneServer(site).start()
        try:
            client = ChatClient(server)
            asyncio.run(measure.ours(client, client.new_conversation(), "Warming up."))
            results["hang"] = asyncio.run(supervision.during_a_hang(client, max(3, repeats)))
            results["cache"] = asyncio.run(supervision.cached(client, max(3, repeats)))
        finally:
            server.stop()
        results["start"] = supervision.first_after_start(lambda: DaphneServer(site).start(), 1 if quick else 3)
        site.destroy()
    return results


def _local_model(repeats: int, quick: bool) -> dict:
    """The local language model alone, then behind the chat on a Daphne of its own."""
    from voice.tests.servers import ChatClient, DaphneServer, Site

    results = {"speed": llm.model_speed(max(3, repeats)), "trimming": trimming.compare(*((6, 160) if quick else (16,)))}
    with tempfile.TemporaryDirectory(prefix="voice-bench-llm-") as scratch:
        # No segment cache: the same questions come back, and the figures are about the model and synthesis.
        site = Site(Path(scratch), database="sqlite", VOICE_RESPONDER="local", VOICE_TTS_CACHE_MB="0").setup()
        server = DaphneServer(site).start()
        try:
            client = ChatClient(server)
            # Warm the model and the voice through the real path first.
            asyncio.run(measure.ours(client, client.new_conversation(), llm.QUESTIONS[0]))
            users = (1, 2) if quick else (1, 5)
            results["wire"] = asyncio.run(llm.over_the_wire(client, repeats, users))
            results["interruption"] = asyncio.run(llm.interruption(client, max(1, repeats // 2)))
            question = stt.spoken("What is a good name for a cat?")
            results["speak"] = asyncio.run(stt.speak_to_first_audio(client, question, max(1, repeats // 2)))
        finally:
            server.stop()
            site.destroy()
    return results


def _hands_free(repeats: int, quick: bool) -> dict:
    """The end-of-turn rule on pauses (in this process), then hands-free turns on a Daphne with the local model."""
    from voice.tests.servers import ChatClient, DaphneServer, Site

    results = {"turn_rule": handsfree.turn_rule(quick)}
    with tempfile.TemporaryDirectory(prefix="voice-bench-handsfree-") as scratch:
        site = Site(
            Path(scratch),
            database="sqlite",
            VOICE_RESPONDER="local",
            VOICE_TTS_CACHE_MB="0",
            VOICE_HANDSFREE_DRAFT_REPLIES="true",
        ).setup()
        server = DaphneServer(site).start()
        try:
            client = ChatClient(server)
            asyncio.run(measure.ours(client, client.new_conversation(), llm.QUESTIONS[0]))  # warm the model and voice
            runs = 1 if quick else max(3, repeats // 2)
            results["wire"] = asyncio.run(handsfree.over_the_wire(client, runs))
            results["page"] = handsfree.in_the_page(server, runs)
        finally:
            server.stop()
            site.destroy()
        # The same turns with replies that start only when the turn has ended: what drafting saves.
        site = Site(
            Path(scratch) / "undrafted",
            database="sqlite",
            VOICE_RESPONDER="local",
            VOICE_TTS_CACHE_MB="0",
            VOICE_HANDSFREE_DRAFT_REPLIES="false",
        ).setup()
        server = DaphneServer(site).start()
        try:
            client = ChatClient(server)
            asyncio.run(measure.ours(client, client.new_conversation(), llm.QUESTIONS[0]))
            results["undrafted"] = asyncio.run(handsfree.hands_free_turns(client, runs))
        finally:
            server.stop()
            site.destroy()
        # Replies read back (each a new text), played through a speaker into the microphone: with the echo
        # canceller (the default), and fewer without it, for comparison.
        results["echo"] = {}
        for cancel, replies in ((True, 3 if quick else 20), (False, 2 if quick else 5)):
            site = Site(
                Path(scratch) / f"echo-{cancel}",
                database="sqlite",
                VOICE_RESPONDER="readaloud",
                VOICE_TTS_CACHE_MB="0",
                VOICE_HANDSFREE_ECHO_CANCELLER=str(cancel).lower(),
                # One user asks in three conversations at once, 60 questions in a few minutes: not a limit test.
                VOICE_CHAT_RATE_LIMIT="1000",
                VOICE_HANDSFREE_SOCKETS_PER_USER=str(len(handsfree.ECHO_LEVELS_DB)),  # each level listens
            )
            server = DaphneServer(site.setup()).start()
            try:
                echo = asyncio.run(handsfree.echo_through_a_speaker(ChatClient(server), replies))
                results["echo"][cancel] = echo
            finally:
                server.stop()
                site.destroy()
    return results


def _speech_api_vs_piper(server, piper_http, api_key, repeats, lengths) -> dict:
    """Time to first audio byte and total, our /v1/audio/speech (wav) vs Piper's HTTP server."""
    results = {}
    for n in lengths:
        text = measure.reply_text(n)
        ours, theirs = [], []
        for _ in range(repeats + 1):  # the first round warms both
            ours.append(
                timed_post(
                    f"{server.url}/v1/audio/speech",
                    json={"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"},
                    headers={"Authorization": f"Bearer {api_key}"},
                )
            )
            theirs.append(timed_post(f"{piper_http.url}/synthesize", json={"text": text}))
        ours, theirs = ours[1:], theirs[1:]
        results[n] = {
            "ours_first": measure.median([o[0] for o in ours]),
            "ours_total": measure.median([o[1] for o in ours]),
            "piper_first": measure.median([t[0] for t in theirs]),
            "piper_total": measure.median([t[1] for t in theirs]),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument(
        "--only",
        type=lambda value: set(value.split(",")),
        help=f"run only these sections, comma-separated ({', '.join(SECTIONS)}); "
        "prints their tables, writes nothing unless --out says where",
    )
    parser.add_argument(
        "--levels",
        type=lambda value: tuple(int(n) for n in value.split(",")),
        default=(),
        help="conversations: these numbers of users instead of the plan's (e.g. 1,20)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the report here (default: docs/benchmarks.md)")
    args = parser.parse_args(argv)
    if args.only and not args.only <= set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(args.only - set(SECTIONS)))}")
    # docs/benchmarks.md holds one whole run: never a quick or partial one.
    out = args.out or (None if args.quick or args.only or args.levels else DOCS / "benchmarks.md")
    started = time.perf_counter()
    run(quick=args.quick, out=out, only=args.only, levels=args.levels)
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
