"""Responders produce the assistant's reply text, as a stream of deltas.

VOICE_RESPONDER names the class (a dotted path). The default reads the query
back ("read-aloud"); a language model plugs in by yielding its tokens.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from django.conf import settings
from django.utils.module_loading import import_string

from .models import Message


class BaseResponder:
    async def respond(self, query: str, history: Sequence[Message]) -> AsyncIterator[str]:
        """Yield the reply in pieces as they are produced.

        ``history`` holds the conversation's earlier messages, oldest first.
        Raising aborts the reply: the text so far is kept and the reply is
        stored with status ``failed``.
        """
        raise NotImplementedError
        yield  # pragma: no cover - makes this an async generator


class ReadAloudResponder(BaseResponder):
    """Speak the query back, word by word, as a model would stream it."""

    async def respond(self, query: str, history: Sequence[Message]) -> AsyncIterator[str]:
        for piece in re.findall(r"\S+\s*|\s+", query):
            yield piece


def get_responder() -> BaseResponder:
    return import_string(settings.VOICE_RESPONDER)()
