"""Incremental sentence splitting, so speech can start before the reply is complete.

Reply text arrives in deltas. ``SentenceSplitter.feed`` returns each sentence
as soon as it is certainly over (its end punctuation is followed by white
space), with its character span in the whole reply, so clients can highlight
the sentence being spoken. Overlong runs without punctuation are cut at a
clause or word boundary, bounding the wait for the first audio.

The first segment of a reply may end at its first clause break instead
(``first_clause_chars``): synthesis time grows with length, so a first clause
starts speech in about half the time of a whole first sentence, and a comma is
a pause anyway. Every later segment is a whole sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ., !, ?, … (possibly repeated), then closing quotes or brackets, then space;
# or a line break.
_BOUNDARY = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s)|\n""")
_ABBREVIATIONS = frozenset("mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m fig no approx dept inc ltd co mt".split())
_SOFT_BREAK = re.compile(r"[,;:—–]\s|\s")
_CLAUSE_BREAK = re.compile(r"[,;:—–](?=\s)")


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int
    end: int


class SentenceSplitter:
    def __init__(self, max_chars: int = 240, first_clause_chars: int = 0) -> None:
        """``first_clause_chars``: end the first segment at a clause break this far in (0: never)."""
        self.max_chars = max_chars
        self.first_clause_chars = first_clause_chars
        self._text = ""
        self._consumed = 0  # everything before this offset has been emitted

    def feed(self, delta: str) -> list[Sentence]:
        self._text += delta
        sentences = []
        while True:
            sentence = self._next_sentence()
            if sentence is None:
                break
            if sentence.text:
                sentences.append(sentence)
        return sentences

    def flush(self) -> list[Sentence]:
        """Whatever is left once the reply is complete."""
        rest = self._take(len(self._text))
        return [rest] if rest.text else []

    def _next_sentence(self) -> Sentence | None:
        pending = self._text[self._consumed :]
        if self._consumed == 0 and self.first_clause_chars:
            clause = _CLAUSE_BREAK.search(pending, self.first_clause_chars)
            sentence_end = _BOUNDARY.search(pending)
            # Only a clause that ends before the first sentence does, and is
            # certainly followed by more text.
            if clause and (sentence_end is None or clause.start() < sentence_end.start()):
                if len(pending) > clause.end():
                    return self._take(clause.end())
        for match in _BOUNDARY.finditer(pending):
            if match.group() != "\n" and self._is_abbreviation(pending[: match.start()]):
                continue
            return self._take(self._consumed + match.end())
        if len(pending) > self.max_chars:
            window = pending[: self.max_chars]
            breaks = list(_SOFT_BREAK.finditer(window))
            cut = breaks[-1].end() if breaks else self.max_chars
            return self._take(self._consumed + cut)
        return None

    @staticmethod
    def _is_abbreviation(before: str) -> bool:
        words = before.split()
        if not words:
            return False
        word = words[-1].lower().rstrip(".")
        # "Dr." or "e.g." or an initial such as "J."
        return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and words[-1][0].isupper())

    def _take(self, end: int) -> Sentence:
        raw = self._text[self._consumed : end]
        stripped = raw.strip()
        start = self._consumed + (raw.find(stripped) if stripped else 0)
        self._consumed = end
        return Sentence(text=stripped, start=start, end=start + len(stripped))
