"""One reply, from query to speech: responder → text filters → sentences → speech.

``ReplyPipeline.run`` yields typed events the moment each exists. It neither
publishes nor stores: the chat hands its events to ``voice.publishing`` and
``voice.recorder``, the speech API turns the audio into its own streams. Text
and speech run concurrently, so the model keeps writing while the sentences it
has finished are spoken.

Failures are events too: a responder that fails ends the text (``TextFailed``)
but what it wrote is still spoken; an engine that fails ends the speech
(``SpeechFailed``) but the text goes on. Closing the iterator (an interruption)
stops both at once, and the responder with them.

A reply is sized for the ear (``voice.cutoffs``): one that would speak past
VOICE_REPLY_MAX_SECONDS, or that loops, is ended at a sentence's end. The
responder is closed (its model stops), ``TextCut`` says why and where the kept
text ends in the displayed reply, and ``TextDone`` follows as usual.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from django.conf import settings

from . import audio
from .cutoffs import REPETITION, ReplyCutoff
from .filters.reasoning import ThinkTagFilter
from .filters.speech import SpeechText
from .responders import BaseResponder, Queued, Reasoning, ResponderError, ResponderTimeout, Turn, Usage
from .scheduling import Demand, current_demand
from .sentences import Sentence, SentenceSplitter
from .tts import BaseEngine, TTSError, get_engine
from .tts.base import check_speed
from .tts.service import synthesis

logger = logging.getLogger(__name__)

# Channel-layer messages must stay well under the spec's 1 MB.
MAX_CHUNK_BYTES = 256 * 1024


# --- Events -----------------------------------------------------------------
@dataclass(frozen=True)
class TextDelta:
    """More of the reply, as displayed."""

    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """More of the model's thinking: stored, never shown or spoken."""

    text: str


@dataclass(frozen=True)
class ReplyQueued:
    """The reply waits for the model: its place in line, and the likely wait in seconds (None: unknown)."""

    position: int
    expected_wait: float | None


@dataclass(frozen=True)
class PromptRead:
    """What the model had to read for the reply (``voice.responders.Usage``): prompt tokens, those read, memory."""

    prompt_tokens: int
    read_tokens: int
    memory: str


@dataclass(frozen=True)
class SentenceWritten:
    """A sentence of the reply is complete (spoken next, when speech is on)."""

    sentence: Sentence


@dataclass(frozen=True)
class TextCut:
    """The reply was ended early (``voice.cutoffs``: "length" or "repetition"), after what was said.

    ``display_end``: where the kept text ends in the displayed reply (text after it was shown, never said).
    """

    reason: str
    display_end: int


@dataclass(frozen=True)
class TextDone:
    """The responder has finished (successfully or not)."""


@dataclass(frozen=True)
class TextFailed:
    error: ResponderError


@dataclass(frozen=True)
class SpeechStarted:
    """Speech is about to flow: the engine and voice that say it."""

    engine: str
    voice: str


@dataclass(frozen=True)
class SpeechChunk:
    chunk: audio.AudioChunk  # normalised: pcm_s16le or mp3 bytes
    segment: Sentence
    seq: int  # counts from 0 within the reply


@dataclass(frozen=True)
class SegmentSpoken:
    """All audio of one segment has been handed over."""

    segment: Sentence
    audio_start: float  # seconds into the reply's audio
    audio_end: float
    synthesis_seconds: float


@dataclass(frozen=True)
class SpeechFailed:
    error: TTSError


Event = (
    TextDelta
    | ReasoningDelta
    | ReplyQueued
    | PromptRead
    | SentenceWritten
    | TextCut
    | TextDone
    | TextFailed
    | SpeechStarted
    | SpeechChunk
    | SegmentSpoken
    | SpeechFailed
)


@dataclass(frozen=True)
class Timeouts:
    first_token: float
    between_tokens: float

    @classmethod
    def from_settings(cls) -> Timeouts:
        return cls(settings.VOICE_LLM_FIRST_TOKEN_TIMEOUT, settings.VOICE_LLM_TOKEN_TIMEOUT)


class Speaker:
    """Says text with one engine, voice and speed."""

    def __init__(self, engine: BaseEngine | None = None, voice: str | None = None, speed: float = 1.0) -> None:
        self.engine = engine
        self.voice = voice
        self.speed = speed
        self.language = "en"

    def resolve(self) -> None:
        """Pick the engine and voice; TTSError if they cannot be had. Blocking (engines list voices lazily)."""
        self.engine = self.engine or get_engine()
        chosen = self.engine.get_voice(self.voice)
        self.voice = chosen.id
        self.language = chosen.language.split("-")[0] or "en"

    def stream(self, text: str, due: float | None = None) -> AsyncIterator[audio.AudioChunk]:
        """The audio of ``text``, needed by ``due`` (time.monotonic(); default: now)."""
        return synthesis().stream(self.engine, self.voice, check_speed(self.speed), text, due)


def sentence_splitter(first_clause_chars: int | None = None) -> SentenceSplitter:
    """How a reply is cut into the segments it is said in (VOICE_FIRST_CLAUSE_CHARS, VOICE_*SEGMENT_MAX_CHARS)."""
    return SentenceSplitter(
        first_clause_chars=settings.VOICE_FIRST_CLAUSE_CHARS if first_clause_chars is None else first_clause_chars,
        segment_max_chars=settings.VOICE_SEGMENT_MAX_CHARS,
        first_segment_max_chars=settings.VOICE_FIRST_SEGMENT_MAX_CHARS,
    )


class GivenText(BaseResponder):
    """A "responder" that already has its text: for saying what a client sent (the speech API)."""

    name = "given"
    uses_history = False
    cutoffs = False  # said word for word, however long

    async def respond(self, query: str, history: Sequence[Turn]) -> AsyncIterator[str]:
        yield query


_END = object()
# What follows a segment that ends a line of the displayed reply (a list item, a heading).
_LINE_END = re.compile(r"[ \t]*\n")


def reply_cutoff(responder: BaseResponder) -> ReplyCutoff | None:
    """The cutoffs a responder's replies are held to (VOICE_REPLY_MAX_SECONDS); None: none (text given to say)."""
    return ReplyCutoff(settings.VOICE_REPLY_MAX_SECONDS) if responder.cutoffs else None


class ReplyPipeline:
    """Responder → reasoning filter → speech text → sentences → speech, as events."""

    def __init__(
        self,
        responder: BaseResponder,
        speaker: Speaker | None,
        *,
        first_clause_chars: int | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.responder = responder
        self.speaker = speaker  # None: text only
        self.first_clause_chars = (
            settings.VOICE_FIRST_CLAUSE_CHARS if first_clause_chars is None else first_clause_chars
        )
        self.timeouts = timeouts or Timeouts.from_settings()

    async def run(self, query: str, history: Sequence[Turn] = ()) -> AsyncIterator[Event]:
        events: asyncio.Queue = asyncio.Queue()
        segments: asyncio.Queue[Sentence | None] = asyncio.Queue()
        speech_ready = await self._prepare_speech(events)
        # A spoken reply's listener paces the model; a silent one needs all its text now.
        demand = Demand(settings.VOICE_LLM_WRITE_AHEAD) if speech_ready else None
        stages = [
            self._write(query, history, events, segments, demand),
            self._speak(events, segments, demand) if demand else _drain(segments),
        ]
        # The stages' tasks copy this context: the responder finds its reply's demand there.
        token = current_demand.set(demand)
        try:
            tasks = [asyncio.create_task(_stage(stage, events)) for stage in stages]
        finally:
            current_demand.reset(token)
        running = len(tasks)
        try:
            while running:
                event = await events.get()
                if event is _END:
                    running -= 1
                else:
                    yield event
            for task in tasks:
                task.result()  # a bug in a stage surfaces here, not silently
        finally:
            for task in tasks:
                task.cancel()
            # Let the stages close the responder (and its upstream request).
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _prepare_speech(self, events: asyncio.Queue) -> bool:
        if self.speaker is None:
            return False
        try:
            await asyncio.to_thread(self.speaker.resolve)
        except TTSError as exc:
            events.put_nowait(SpeechFailed(exc))
            return False
        return True

    # --- Text ---------------------------------------------------------------
    async def _write(
        self,
        query: str,
        history: Sequence[Turn],
        events: asyncio.Queue,
        segments: asyncio.Queue,
        demand: Demand | None,
    ) -> None:
        thinking = ThinkTagFilter()
        speech = SpeechText(language=self.speaker.language if self.speaker else "en")
        splitter = sentence_splitter(self.first_clause_chars)
        cutoff = reply_cutoff(self.responder)
        shown = ""  # the reply as displayed so far
        kept_end = 0  # where the last segment said ends in it
        cut = ""  # why the reply was ended early

        def written(sentences: list[Sentence], last: bool = False) -> None:
            """Say these segments, unless the cutoffs end the reply first (``last``: no more text comes)."""
            nonlocal kept_end, cut
            for index, sentence in enumerate(sentences):
                if cut:
                    return
                if cutoff is not None:
                    verdict = cutoff.judge(sentence.text, ends_line=bool(_LINE_END.match(shown, sentence.end)))
                    # Ending the reply after its very last segment cuts nothing.
                    cut = "" if last and verdict.say and index == len(sentences) - 1 else verdict.cut
                    if not verdict.say:
                        continue
                kept_end = sentence.end
                events.put_nowait(SentenceWritten(sentence))
                if demand is not None:
                    demand.written(sentence.text)
                    segments.put_nowait(sentence)

        def take(pieces: list) -> None:
            nonlocal shown, cut
            for piece in pieces:
                if cut:
                    return
                if isinstance(piece, Reasoning):
                    events.put_nowait(ReasoningDelta(piece.text))
                elif isinstance(piece, Queued):
                    events.put_nowait(ReplyQueued(piece.position, piece.expected_wait))
                elif isinstance(piece, Usage):
                    events.put_nowait(PromptRead(piece.prompt_tokens, piece.read_tokens, piece.memory))
                elif piece:
                    events.put_nowait(TextDelta(piece))
                    shown += piece
                    spoken = speech.feed(piece)
                    sentences = splitter.feed(spoken)
                    if cutoff is not None and cutoff.stream("".join(p.text for p in spoken)) and not sentences:
                        if not cutoff.said_segments:
                            sentences = splitter.flush()[:1]  # the first segment, up to where the loop showed
                        elif cutoff.at_sentence_end:
                            cut = REPETITION  # no sentence begun: end here (else with the segment that ends it)
                    written(sentences)

        try:
            # aclosing: leaving the loop early (a cut) closes the responder at once, which stops its model.
            async with aclosing(self._timed(self.responder.respond(query, history), demand)) as pieces:
                async for piece in pieces:
                    if isinstance(piece, Reasoning | Queued | Usage):
                        take([piece])
                    else:
                        take(thinking.feed(piece))
                    if cut:
                        break
        except ResponderError as exc:
            events.put_nowait(TextFailed(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A responder that breaks its contract still only costs its reply.
            logger.exception("Responder %s failed", type(self.responder).__name__)
            events.put_nowait(TextFailed(ResponderError(f"{type(exc).__name__}: {exc}")))
        else:
            take(thinking.flush())
        if not cut:
            # Say what there is, even after a failure.
            rest = speech.flush()
            if cutoff is not None:
                cutoff.stream("".join(p.text for p in rest), final=True)
            written(splitter.feed(rest) + splitter.flush(), last=True)
        segments.put_nowait(None)
        if cut:
            events.put_nowait(TextCut(cut, kept_end))
        events.put_nowait(TextDone())

    async def _timed(self, pieces: AsyncIterator, demand: Demand | None) -> AsyncIterator:
        """The responder's pieces, failing when the first or the next one is too long in coming.

        A reply paced by its listener (``demand`` not yet due) is not late: the
        model writes it when it is needed. A place in line is news, not a token.
        """
        iterator = aiter(pieces)
        limit, which = self.timeouts.first_token, "first token"
        coming: asyncio.Future | None = None
        try:
            while True:
                coming = coming or asyncio.ensure_future(anext(iterator))
                done, _pending = await asyncio.wait({coming}, timeout=limit)
                if not done:
                    if demand is not None and demand.text_due() > time.monotonic():
                        continue
                    raise ResponderTimeout(f"No {which} within {limit:g} s.")
                try:
                    piece = coming.result()
                except StopAsyncIteration:
                    return
                finally:
                    if coming.done():
                        coming = None
                yield piece
                if not isinstance(piece, Queued | Usage):  # news, not tokens
                    limit, which = self.timeouts.between_tokens, "token"
        finally:
            if coming is not None:
                coming.cancel()
                await asyncio.gather(coming, return_exceptions=True)
            await iterator.aclose()

    # --- Speech -------------------------------------------------------------
    async def _speak(self, events: asyncio.Queue, segments: asyncio.Queue, demand: Demand) -> None:
        speaker = self.speaker
        events.put_nowait(SpeechStarted(engine=speaker.engine.name, voice=speaker.voice))
        seq = 0
        position = 0.0  # seconds of audio handed over so far
        clock = demand.clock  # when the listener's audio runs out: the next segment's deadline
        failed = False
        while (segment := await segments.get()) is not None:
            demand.spoken(segment.text)  # being said now: its audio will count, not its text
            if failed:
                continue  # keep draining: the text still completes
            started = time.monotonic()
            seconds = 0.0
            segment_start = position
            try:
                async for chunk in speaker.stream(segment.text, clock.due(settings.VOICE_TTS_DEADLINE_MARGIN)):
                    seconds += time.monotonic() - started
                    for piece in audio.split(chunk, MAX_CHUNK_BYTES):
                        events.put_nowait(SpeechChunk(piece, segment, seq))
                        seq += 1
                        position += piece.duration
                        clock.sent(piece.duration)
                    started = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, TTSError):
                    logger.exception("Speech engine %s failed", speaker.engine.name)
                    exc = TTSError(f"{type(exc).__name__}: {exc}")
                events.put_nowait(SpeechFailed(exc))
                failed = True
                continue
            seconds += time.monotonic() - started
            events.put_nowait(SegmentSpoken(segment, segment_start, position, seconds))


async def _stage(stage, events: asyncio.Queue) -> None:
    """Run one stage; whatever happens, tell ``run`` it is over."""
    try:
        await stage
    finally:
        events.put_nowait(_END)


async def _drain(segments: asyncio.Queue) -> None:
    """Speech is off: consume the segments until the text is over."""
    while await segments.get() is not None:
        pass
