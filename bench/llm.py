"""The local language model: its own speed, and what a user waits for over the wire.

Time to first token and tokens per second come from the responder alone, in
this process. Query → first audio, for one and for five users at once, and
interruption latency come from a Daphne serving the chat with
VOICE_RESPONDER=local, over real WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect

from voice import protocol

from . import measure
from .tables import table

QUESTIONS = [
    "What is the capital of France?",
    "Why is the sky blue?",
    "Give me one tip for sleeping better.",
    "What should I cook tonight?",
    "How far away is the moon?",
    "What is a good name for a cat?",
    "How do I boil an egg?",
]


def model_speed(repeats: int) -> dict:
    """Median time to first token and tokens per second of the local responder, in this process."""
    from voice.responders import get_responder

    responder = get_responder("local")
    responder.prepare()

    async def one(question: str) -> tuple[float, float]:
        started = time.perf_counter()
        first = None
        pieces = 0
        async for _piece in responder.respond(question, []):
            first = first or time.perf_counter() - started
            pieces += 1
        return first, pieces / (time.perf_counter() - started - first) if pieces > 1 else float("nan")

    results = [asyncio.run(one(QUESTIONS[n % len(QUESTIONS)])) for n in range(repeats)]
    return {
        "first_token": measure.median([r[0] for r in results]),
        "tokens_per_second": measure.median([r[1] for r in results]),
    }


async def over_the_wire(client, repeats: int, users: tuple[int, ...] = (1, 5)) -> dict:
    """Query sent → first audio byte, p50/p95, for each number of users asking at once."""
    levels = {}
    for level in users:
        times, errors = [], 0
        for round_ in range(repeats if level == 1 else max(1, repeats // 2)):
            conversations = [(client, client.new_conversation()) for _ in range(level)]
            question = QUESTIONS[round_ % len(QUESTIONS)]
            exchanges, _wall = await measure.concurrent(conversations, question)
            times += [e.ttfa for e in exchanges if e.ttfa is not None]
            errors += sum(bool(e.error) for e in exchanges)
        levels[level] = {
            "p50": measure.percentile(times, 50),
            "p95": measure.percentile(times, 95),
            "replies": len(times),
            "errors": errors,
        }
    return levels


async def interruption(client, repeats: int) -> dict:
    """New query sent while a reply speaks → the old reply stopped (server), → the new reply's first audio."""
    stopped, restarted = [], []
    for _ in range(repeats):
        conversation = client.new_conversation()
        url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{conversation}/"
        async with connect(url, additional_headers=client.headers(), max_size=None, open_timeout=30) as socket:
            await socket.send(json.dumps({"type": "query", "text": "Tell me a long story about a lighthouse."}))
            old = None
            async for frame in socket:  # until the old reply's first audio
                if isinstance(frame, bytes):
                    old = protocol.AudioData.from_frame(frame).header["message_id"]
                    break
            sent = time.perf_counter()
            await socket.send(json.dumps({"type": "query", "text": "Stop. What time is it?"}))
            stop_at = first_new_audio = None
            async for frame in socket:
                now = time.perf_counter() - sent
                if isinstance(frame, bytes):
                    header = protocol.AudioData.from_frame(frame).header
                    if header["message_id"] != old:
                        first_new_audio = now
                else:
                    event = json.loads(frame)
                    if event["type"] == "reply.done" and event["message_id"] == old:
                        stop_at = now
                if stop_at is not None and first_new_audio is not None:
                    break
        stopped.append(stop_at)
        restarted.append(first_new_audio)
    return {"old_stopped": measure.median(stopped), "new_audio": measure.median(restarted)}


def tables(results: dict) -> list[tuple[str, str]]:
    """(title, markdown table) pairs for the report."""
    speed = results["speed"]
    wire = results["wire"]
    cut = results["interruption"]
    return [
        (
            "The local model alone (SmolLM2-135M-Instruct, llama.cpp, in-process)",
            table(
                ["time to first token (ms)", "tokens per second"],
                [[round(speed["first_token"] * 1000), round(speed["tokens_per_second"])]],
            ),
        ),
        (
            "Query sent → first audio, VOICE_RESPONDER=local (model and speech share 2 cores)",
            table(
                ["users at once", "p50 (ms)", "p95 (ms)", "replies", "errors"],
                [
                    [level, round(w["p50"] * 1000), round(w["p95"] * 1000), w["replies"], w["errors"]]
                    for level, w in wire.items()
                ],
            ),
        ),
        (
            "Interruption: a new query while a reply speaks",
            table(
                ["new query → old reply stopped (ms)", "new query → new reply's first audio (ms)"],
                [[round(cut["old_stopped"] * 1000), round(cut["new_audio"] * 1000)]],
            ),
        ),
    ]
