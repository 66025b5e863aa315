"""The interface every responder implements, and the errors responders raise.

A responder writes the assistant's reply as a stream: it yields the answer in
pieces (``str``) as the model produces them, and may yield ``Reasoning``
pieces, which are stored for staff but never shown to the user or spoken.
It runs on the event loop, so model work must happen elsewhere (a thread
pool, another process, another server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from django.conf import settings

from ..exceptions import (  # noqa: F401 - the responders' errors, re-exported
    ResponderBadResponse,
    ResponderBusy,
    ResponderError,
    ResponderRateLimited,
    ResponderTimeout,
    ResponderUnavailable,
)


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation, as the model is told it."""

    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class Reasoning:
    """A piece of the model's thinking: kept out of the reply text and the speech."""

    text: str


@dataclass(frozen=True)
class Queued:
    """The reply waits for the model (every slot is busy): its place in line, and the likely wait in seconds."""

    position: int
    expected_wait: float | None = None


@dataclass(frozen=True)
class Usage:
    """What the model had to read for this reply: its prompt's tokens, those it read (the rest it had in
    memory), and where that memory was (the local model: "slot", "restored" or "cold")."""

    prompt_tokens: int
    read_tokens: int
    memory: str = ""


class BaseResponder:
    """Subclasses set ``name`` and implement ``respond``."""

    name: str = ""
    uses_history = True  # False: the conversation so far is not loaded for it
    # The reply pipeline may end its replies early (voice.cutoffs: too long to listen to, or looping).
    cutoffs = True

    def history_chars(self) -> int:
        """How many characters of earlier turns to load for it (the oldest beyond are left out)."""
        return settings.VOICE_LLM_HISTORY_CHARS

    def prepare(self) -> None:
        """Load what answering needs (a model), so the first reply does not wait for it. Blocking."""

    async def respond(self, query: str, history: Sequence[Turn]) -> AsyncIterator[str | Reasoning | Queued]:
        """Yield the reply in pieces as they are produced (and ``Queued`` while it waits for the model).

        ``history`` holds the conversation's earlier turns, oldest first,
        already cut to the history budget. Raise ``ResponderError`` on failure:
        the text so far is kept and the reply is stored as ``failed``. Closing
        the generator (an interruption) must stop the model's work.
        """
        raise NotImplementedError
        yield  # pragma: no cover - makes this an async generator


def chat_messages(query: str, history: Sequence[Turn], system_prompt: str | None = None) -> list[dict]:
    """The conversation in the chat-completions shape every model server takes."""
    prompt = settings.VOICE_LLM_SYSTEM_PROMPT if system_prompt is None else system_prompt
    messages = [{"role": "system", "content": prompt}] if prompt else []
    messages += [{"role": turn.role, "content": turn.text} for turn in history]
    messages.append({"role": "user", "content": query})
    return messages


def drop_oldest_turn(messages: list[dict]) -> list[dict] | None:
    """``messages`` without its oldest earlier turn (and an answer left without its question); None if none is left.

    The system prompt (first) and the question (last) always stay.
    """
    start = 1 if messages and messages[0].get("role") == "system" else 0
    earlier = messages[start:-1]
    if not earlier:
        return None
    earlier = earlier[1:]
    while earlier and earlier[0].get("role") == "assistant":
        earlier = earlier[1:]
    return [*messages[:start], *earlier, messages[-1]]
