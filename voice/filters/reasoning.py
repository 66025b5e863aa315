"""Inline reasoning (``<think>…</think>``) kept out of the reply, even when a tag is split across deltas."""

from __future__ import annotations

from ..responders.base import Reasoning

OPEN = "<think>"
CLOSE = "</think>"


class ThinkTagFilter:
    """Splits streamed text into answer text (``str``) and ``Reasoning``."""

    def __init__(self) -> None:
        self._thinking = False
        self._held = ""  # the end of the text so far, if it may be the start of a tag

    def feed(self, text: str) -> list[str | Reasoning]:
        text = self._held + text
        self._held = ""
        pieces: list[str | Reasoning] = []
        while text:
            tag = CLOSE if self._thinking else OPEN
            index = text.find(tag)
            if index >= 0:
                self._emit(pieces, text[:index])
                text = text[index + len(tag) :]
                self._thinking = not self._thinking
                continue
            # Hold back a tail that could still become the tag.
            keep = next((n for n in range(min(len(tag) - 1, len(text)), 0, -1) if tag.startswith(text[-n:])), 0)
            self._emit(pieces, text[: len(text) - keep])
            self._held = text[len(text) - keep :]
            break
        return pieces

    def flush(self) -> list[str | Reasoning]:
        pieces: list[str | Reasoning] = []
        self._emit(pieces, self._held)
        self._held = ""
        return pieces

    def _emit(self, pieces: list, text: str) -> None:
        if text:
            pieces.append(Reasoning(text) if self._thinking else text)
