"""Read the query back, word by word, as a model would stream it: for tests and demos."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from .base import BaseResponder, Turn


class ReadAloudResponder(BaseResponder):
    name = "readaloud"
    uses_history = False

    async def respond(self, query: str, history: Sequence[Turn]) -> AsyncIterator[str]:
        for piece in re.findall(r"\S+\s*|\s+", query):
            yield piece
