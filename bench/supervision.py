"""What supervision, the cache and the warm-up are worth, measured over the wire.

- A hung engine costs one synthesis process for at most its time limit: other
  users' time to first audio while it hangs, against the same without it.
- A segment said before comes from the cache: time to first audio of a reply
  whose every segment is cached.
- The warm-up: the first query right after a server starts against later ones.
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from . import measure
from .tables import table


async def ttfa(client, conversation: int, text: str) -> float | None:
    exchange = await measure.ours(client, conversation, text)
    return exchange.ttfa


async def during_a_hang(client, repeats: int) -> dict:
    """Median TTFA of single questions, first with no hang, then while another conversation's synthesis hangs."""
    conversation = client.new_conversation()
    # Every text unique from its first word: the segment cache must not answer (it caches first clauses).
    calm = [await ttfa(client, conversation, f"Number {n} of the calm questions.") for n in range(repeats)]
    hanging = client.new_conversation()
    url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{hanging}/"
    async with connect(url, additional_headers=client.headers(), max_size=None) as socket:
        # The cue word: bench.engines.HangOnCue never finishes a segment that holds it.
        await socket.send(json.dumps({"type": "query", "text": "Please hang now."}))
        # Its text is out: its one segment is on its way to a process, where it hangs.
        async for frame in socket:
            if isinstance(frame, str) and json.loads(frame)["type"] == "reply.delta":
                break
        during = [
            await ttfa(client, conversation, f"Number {n} of the questions asked while one is stuck.")
            for n in range(repeats)
        ]
    return {"calm": measure.median(calm), "during": measure.median(during)}


async def cached(client, repeats: int) -> dict:
    """TTFA of a reply said for the first time, and of the same reply again (every segment cached)."""
    conversation = client.new_conversation()
    first, again = [], []
    for n in range(repeats):
        text = f"Welcome back, friend number {n}. It is good to hear from you again."
        first.append(await ttfa(client, conversation, text))
        again.append(await ttfa(client, conversation, text))
    return {"first": measure.median(first), "cached": measure.median(again)}


def first_after_start(server_factory, repeats: int) -> dict:
    """TTFA of the very first query after a server starts (and says it is ready), and of the queries after it."""
    from voice.tests.servers import ChatClient, answers_http, wait_until

    firsts, laters = [], []
    for _ in range(repeats):
        server = server_factory()
        try:
            health = f"{server.url}/health"
            wait_until(lambda url=health: answers_http(url), 120, "the server never became ready")
            client = ChatClient(server)
            conversation = client.new_conversation()
            firsts.append(asyncio.run(ttfa(client, conversation, "The first question after a start, please.")))
            laters.append(asyncio.run(ttfa(client, conversation, "And the second question after it, please.")))
        finally:
            server.stop()
    return {"first": measure.median(firsts), "later": measure.median(laters)}


def tables(results: dict) -> list[tuple[str, str]]:
    hang, cache, start = results["hang"], results["cache"], results["start"]
    return [
        (
            "A hung engine: other users' time to first audio while one synthesis hangs (2 processes)",
            table(
                ["no hang (ms)", "during a hang (ms)", "ratio"],
                [[round(hang["calm"] * 1000), round(hang["during"] * 1000), round(hang["during"] / hang["calm"], 2)]],
            ),
        ),
        (
            "The cache: the same reply a second time",
            table(
                ["first time TTFA (ms)", "cached TTFA (ms)"],
                [[round(cache["first"] * 1000), round(cache["cached"] * 1000, 1)]],
            ),
        ),
        (
            "The warm-up: the first query after a start",
            table(
                ["first query TTFA (ms)", "next query TTFA (ms)"],
                [[round(start["first"] * 1000), round(start["later"] * 1000)]],
            ),
        ),
    ]
