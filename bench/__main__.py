"""Run the benchmarks: `python -m bench` (full, a few minutes) or `python -m bench --quick` (seconds).

Starts a real Daphne (the project plus the baseline consumer) on a scratch
site, measures over real WebSockets on loopback, prints tables and writes
docs/benchmarks.md with plots. Every ratio comes from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from . import measure
from .piper_http import PiperHttpServer, timed_post
from .report import Report

DOCS = Path(__file__).resolve().parents[1] / "docs"


def run(quick: bool = False, out: Path | None = None) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceproject.settings")
    import django

    django.setup()
    from voice.testing import ChatClient, DaphneServer, Site
    from voice.tts import get_engine

    repeats = 1 if quick else 7
    lengths = [1, 3] if quick else [1, 3, 10]
    levels = [1, 2] if quick else [1, 5, 10, 20, 50]
    results: dict = {"machine": measure.machine(), "quick": quick, "repeats": repeats}

    engine = get_engine("piper")
    engine.prepare()
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as scratch:
        site = Site(Path(scratch), database="sqlite", VOICE_TTS_DISPATCH="inline").setup()
        # The baseline's single message outgrows Daphne's 1 MiB default for
        # long replies (our chunks stay under 256 KiB): lift the cap for it.
        server = DaphneServer(
            site, application="bench.asgi:application", options=("--websocket-max-message-size", "0")
        ).start()
        piper_http = PiperHttpServer(site).start()
        try:
            client = ChatClient(server)
            results.update(asyncio.run(_over_the_wire(client, server, engine, repeats, lengths, levels)))
            api_key = site.manage("create_api_key", "demo").strip().splitlines()[-1]
            results["http"] = _speech_api_vs_piper(server, piper_http, api_key, repeats, lengths)
        finally:
            server.stop()
            piper_http.stop()
            site.destroy()

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
    parser.add_argument("--out", type=Path, default=None, help="write the report here (default: docs/benchmarks.md)")
    args = parser.parse_args(argv)
    out = args.out or (None if args.quick else DOCS / "benchmarks.md")
    started = time.perf_counter()
    run(quick=args.quick, out=out)
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
