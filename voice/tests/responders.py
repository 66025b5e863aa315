"""Responders for tests, selected through VOICE_RESPONDER by dotted path."""

import asyncio
import re

from voice.responders import BaseResponder, Reasoning


class RecordingResponder(BaseResponder):
    """Reads the query back, and remembers each query and the history each reply was given."""

    name = "recording"
    queries: list = []
    histories: list = []

    async def respond(self, query, history):
        type(self).queries.append(query)
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
    written = 0  # replies whose sentence is out

    async def respond(self, query, history):
        yield "A first sentence. "
        type(self).written += 1
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


class StreamingResponder(BaseResponder):
    """Streams ``text`` a word at a time; remembers how many words it gave and whether it was closed early.

    Subclasses set ``text``, as long as it must be: a reply that must be cut short, for a cut to stop it.
    """

    text = ""
    given = 0
    closed_early = False

    async def respond(self, query, history):
        cls = type(self)
        cls.given, cls.closed_early = 0, False
        try:
            for piece in re.findall(r"\S+\s*", self.text):
                cls.given += 1
                yield piece
        except GeneratorExit:
            cls.closed_early = True  # closed at a yield: the model would stop here
            raise

    @classmethod
    def words(cls) -> int:
        return len(cls.text.split())


FACTS = [
    (thing, quality)
    for thing in ("sun", "moon", "sea", "wind", "rain", "snow", "forest", "river")
    for quality in ("old", "bright", "quiet", "strange")
]


class LongResponder(StreamingResponder):
    """Answers at great length (over two minutes of speech), in plain sentences that never repeat."""

    name = "long"
    text = " ".join(
        f"Fact number {n} is about the {thing}, which is {quality}." for n, (thing, quality) in enumerate(FACTS, 1)
    )


class LoopingResponder(StreamingResponder):
    """Starts a sensible answer, then loops as small models do, to what would be its token cap."""

    name = "looping"
    text = "A port is a number that identifies a program. " + "A port is a port " * 60
