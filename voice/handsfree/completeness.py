"""How finished a turn's words sound: whether the silence after them ends the turn sooner or later.

Every turn waits VOICE_HANDSFREE_END_SILENCE_MS of silence unless its words
say more. Whisper's punctuation alone cannot: it writes "Remind me to call."
with a full stop (docs/handsfree.md, §7). So the local language model (the
bundled SmolLM2-135M, as LiveKit's turn detector uses a small one) reads the
words without their last punctuation, as the start of a user's message, and
gives the probability that a sentence ends there (a full stop, question mark,
exclamation mark, ellipsis, or the message's end). A finished question
("What's the capital of France") gets 0.2-0.9; a broken one ("Tell me about
the history of") under 0.01. A question (Whisper heard one end: "?") is
finished from 0.2, a statement from 0.5. The probability of the message's
end after Whisper's own question mark keeps short questions the model would
go on ("How are you?") from waiting longer.

- ``Verdict.COMPLETE``: ends after VOICE_HANDSFREE_COMPLETE_SILENCE_MS;
- ``Verdict.UNFINISHED``: a trailing ellipsis, comma or no closing mark, or a
  sentence the model would go on: waits VOICE_HANDSFREE_UNFINISHED_SILENCE_MS;
- ``Verdict.UNSURE``: the default silence, as without a judge.

The model runs in its own thread (one, bounded), never on the event loop;
about 60-200 ms of one core per turn. Without llama.cpp or the bundled model
(VOICE_HANDSFREE_TURN_MODEL=none, or an online deployment without them),
punctuation alone judges, and only ever says UNFINISHED or UNSURE.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from ..plugins import ProcessService

logger = logging.getLogger(__name__)

# Measured on 24 finished and 14 broken sentences (docs/handsfree.md, §7).
# The sentence ends here this likely: the turn is over. Whisper writes "?" when it hears a question end, and "."
# after nearly anything ("I would like to book a table for it."), so a statement must be likelier.
QUESTION_COMPLETE_AT = 0.2
STATEMENT_COMPLETE_AT = 0.5
UNFINISHED_BELOW = 0.01  # ... this unlikely: the person pauses mid-sentence
QUESTION_ENDS_AT = 0.2  # after Whisper's "?", the message ends this likely: a finished question after all
CLOSING = re.compile(r"[.?!]['\"”’)]*$")
TRAILING_OFF = re.compile(r"(\.\.\.|…|[,;:–—-])['\"”’)]*$")
LAST_MARKS = re.compile(r"[\s.?!,;:…–—\-'\"”’)]+$")
SENTENCE_ENDS = {".", "?", "!", "..", "...", "…", '."', '?"', '!"'}


class Verdict(enum.Enum):
    COMPLETE = "complete"
    UNSURE = "unsure"
    UNFINISHED = "unfinished"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    sentence_ends: float | None = None  # the model's probability, when a model judged
    message_ends: float | None = None


class SentenceEnd:
    """A small language model's probabilities that a user's message is a finished sentence."""

    def __init__(self, model_path: str, threads: int = 1) -> None:
        self.model_path = model_path
        self.threads = threads
        self._llm = None
        self._ends: list[int] = []
        self._message_end = -1
        self._lock = threading.Lock()  # one llama.cpp context: one judgement at a time, whoever asks

    def start(self) -> SentenceEnd:
        import llama_cpp

        llm = llama_cpp.Llama(
            self.model_path, n_ctx=256, n_batch=256, n_threads=self.threads, logits_all=True, verbose=False
        )
        vocabulary = (llm.detokenize([token]).decode("utf-8", "replace").strip() for token in range(llm.n_vocab()))
        self._ends = [token for token, text in enumerate(vocabulary) if text in SENTENCE_ENDS]
        self._message_end = llm.token_eos()
        self._llm = llm
        return self

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def _next(self) -> np.ndarray:
        llm = self._llm
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        odds = np.exp(logits - logits.max())
        return odds / odds.sum()

    def __call__(self, words: str, closing: str) -> tuple[float, float]:
        """P(a sentence ends after ``words``), P(the message ends after ``words + closing``)."""
        with self._lock:
            return self._probabilities(words, closing)

    def _probabilities(self, words: str, closing: str) -> tuple[float, float]:
        llm = self._llm
        start = f"<|im_start|>user\n{words[-600:]}"  # how a sentence ends is in its last words
        tokens = llm.tokenize(start.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(tokens)
        sentence_ends = float(self._next()[self._ends].sum())
        message_ends = 0.0
        if closing:
            more = llm.tokenize((start + closing).encode(), add_bos=False, special=True)[len(tokens) :]
            if more:
                llm.eval(more)
                message_ends = float(self._next()[self._message_end])
        return sentence_ends, message_ends


def judge(text: str, model: Callable[[str, str], tuple[float, float]] | None) -> Judgement:
    """How finished ``text`` (a turn's final transcript) sounds; ``model``: a ``SentenceEnd``, or None."""
    text = text.strip()
    if not text:
        return Judgement(Verdict.UNSURE)
    if TRAILING_OFF.search(text) or not CLOSING.search(text):
        return Judgement(Verdict.UNFINISHED)
    if model is None:
        return Judgement(Verdict.UNSURE)
    words = LAST_MARKS.sub("", text)
    closing = "?" if text.rstrip("'\"”’)").endswith("?") else ""
    sentence_ends, message_ends = model(words, closing)
    if sentence_ends >= (QUESTION_COMPLETE_AT if closing else STATEMENT_COMPLETE_AT):
        verdict = Verdict.COMPLETE
    elif sentence_ends < UNFINISHED_BELOW and message_ends < QUESTION_ENDS_AT:
        verdict = Verdict.UNFINISHED
    else:
        verdict = Verdict.UNSURE
    return Judgement(verdict, sentence_ends, message_ends)


def _model_from_settings() -> SentenceEnd:
    from ..responders.local import bundled_model_path

    configured = settings.VOICE_HANDSFREE_TURN_MODEL
    path = bundled_model_path() if configured == "bundled" else configured
    return SentenceEnd(str(path))


_model: ProcessService[SentenceEnd] = ProcessService(
    _model_from_settings, settings_prefixes=("VOICE_HANDSFREE_TURN_MODEL",)
)
# One judgement at a time for the whole process: the model shares two cores with the replies.
_threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice-turn-judge")
_waiting = 0
_counting = threading.Lock()


@functools.cache
def _unavailable(reason: str) -> None:
    logger.warning("Turns are judged by their punctuation alone: %s", reason)


def sentence_model() -> SentenceEnd | None:
    """The process's model, loaded on first use (blocking); None without one (said once in the logs)."""
    if settings.VOICE_HANDSFREE_TURN_MODEL == "none":
        return None
    try:
        return _model()
    except Exception as exc:  # no model is a weaker judge, never a failed turn
        _unavailable(f"{type(exc).__name__}: {exc}")
        return None


def prepare() -> None:
    """Load the model now, so that the first turn does not wait for it."""
    sentence_model()


def _judge_now(text: str) -> Judgement:
    return judge(text, sentence_model())


async def judgement(text: str) -> Judgement | None:
    """``judge`` on the judge's thread; None when judgements already wait (the default silence then ends it)."""
    global _waiting
    with _counting:
        if _waiting >= settings.VOICE_HANDSFREE_TURN_QUEUE:
            return None
        _waiting += 1
    job = _threads.submit(_judge_now, text)
    # Counted down when the job ends or is cancelled, whatever becomes of the caller (its loop may be gone).
    job.add_done_callback(_done)
    return await asyncio.wrap_future(job)


def _done(job) -> None:
    global _waiting
    with _counting:
        _waiting -= 1
