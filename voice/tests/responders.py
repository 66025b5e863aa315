"""Responders for tests, selected through VOICE_RESPONDER by dotted path."""

import asyncio
import re

from voice.responders import BaseResponder, Reasoning


class RecordingResponder(BaseResponder):
    """Reads the query back, and remembers the history each reply was given."""

    name = "recording"
    histories: list = []

    async def respond(self, query, history):
        type(self).histories.append(list(history))
        for piece in re.findall(r"\S+\s*|\s+", query):
            yield piece


class ThinkingResponder(BaseResponder):
    """Thinks aloud, in a field of its own and in tags split across pieces, then answers."""

    name = "thinking"

    async def respond(self, query, history):
        yield Reasoning("The user wants a greeting. ")
        for piece in ["<th", "ink>Keep it ", "short.</thi", "nk>Hello ", "there. <", "think>Done?</think>Bye."]:
            yield piece


class HangingResponder(BaseResponder):
    """Writes one sentence, then never another word."""

    name = "hanging"

    async def respond(self, query, history):
        yield "A first sentence. "
        await asyncio.Event().wait()


class SlowResponder(BaseResponder):
    """A sentence every 0.2 s, fifty of them: a reply that is always mid-production."""

    name = "slow"

    async def respond(self, query, history):
        for n in range(1, 51):
            yield f"Sentence number {n}. "
            await asyncio.sleep(0.2)


class BrokenResponder(BaseResponder):
    """Writes a little, then fails with an unexpected error."""

    async def respond(self, query, history):
        yield "Half a "
        raise RuntimeError("model crashed")
