"""Incremental sentence splitting, so speech can start before the reply is complete.

Spoken text arrives in pieces (``voice.filters.speech.Piece``), each standing
for a span of the displayed reply. ``SentenceSplitter.feed`` returns each
sentence as soon as it is certainly over (its end punctuation is followed by
white space), with the span of displayed text it stands for, so clients can
highlight the sentence being spoken. Overlong runs without punctuation are cut at a
clause or word boundary, bounding the wait for the first audio.

A period is not always an end: not in "3.50", "v2.1.0" or a URL (no space follows),
nor after "Dr." or an initial ("J. R. R. Tolkien"), nor in an ellipsis inside a
sentence ("Well... I think so."); after "etc." it is one only if a capital follows.
The speech filter writes most of these out before they get here, but the splitter
must hold up on raw text too.

A sentence's span also covers the silent markup right around it (the "**" of
"**Dr. Smith** arrived."), so the highlight covers what the reader sees as the sentence.

The first segment of a reply may end at its first clause break instead
(``first_clause_chars``): synthesis time grows with length, so a first clause
starts speech in about half the time of a whole first sentence, and a comma is
a pause anyway. Every later segment is a whole sentence.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .filters.speech import Piece

# ., !, ?, … (possibly repeated), then closing quotes or brackets, then space;
# or a line break.
_BOUNDARY = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s)|\n""")
_CLOSERS = "\"'”’)]"
_END_MARKS = ".!?…" + _CLOSERS
_ELLIPSIS = re.compile(r"\.{2,}|…+")
# Never the end of a sentence: titles before a name, and abbreviations inside one.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt vs e.g i.e cf fig approx dept gen capt sgt lt col gov sen rep".split()
)
# The end of a sentence only when a capital follows ("… and so on, etc. Then …").
_SOFT_ABBREVIATIONS = frozenset("etc inc ltd co jr sr a.m p.m no est max min".split())
_SOFT_BREAK = re.compile(r"[,;:—–]\s|\s")
_CLAUSE_BREAK = re.compile(r"[,;:—–](?=\s)")
_SPACE = re.compile(r"\s")
_SPACE_BEFORE_STOP = re.compile(r" (?=[.,]+(?: |$))")  # not "?", "!", ":": French puts a space there


@dataclass(frozen=True)
class Sentence:
    text: str  # what to say
    start: int  # the displayed characters it stands for: [start, end)
    end: int


class SentenceSplitter:
    def __init__(self, max_chars: int = 240, first_clause_chars: int = 0) -> None:
        """``first_clause_chars``: end the first segment at a clause break this far in (0: never)."""
        self.max_chars = max_chars
        self.first_clause_chars = first_clause_chars
        self._text = ""  # spoken text so far
        self._consumed = 0  # everything before this offset has been emitted
        self._starts: list[int] = []  # where each piece begins in the spoken text
        self._pieces: list[Piece] = []  # every piece, silent ones included (they widen spans)
        self._shown_until = 0  # displayed end of the last sentence
        self._waiting = False  # for the character after "etc. "
        self._scanned = 0  # no sentence ends before this (past the consumed text)

    def feed(self, pieces: Iterable[Piece]) -> list[Sentence]:
        if not pieces:
            return []
        added = []
        for piece in pieces:
            self._starts.append(len(self._text))
            self._pieces.append(piece)
            if piece.text:
                added.append(piece.text)
                self._text += piece.text
        # A sentence can only become certain once white space arrives (or what "etc. " waits for).
        if not added or not (
            self._waiting
            or self._consumed == 0
            or _SPACE.search("".join(added))
            or len(self._text) - self._consumed > self.max_chars
        ):
            return []
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
        text, consumed = self._text, self._consumed
        self._waiting = False
        if consumed == 0 and self.first_clause_chars:
            clause = _CLAUSE_BREAK.search(text, self.first_clause_chars)
            sentence_end = _BOUNDARY.search(text)
            # Only a clause that ends before the first sentence does, and is
            # certainly followed by more text.
            if clause and (sentence_end is None or clause.start() < sentence_end.start()):
                if len(text) > clause.end():
                    return self._take(clause.end())
        for match in _BOUNDARY.finditer(text, max(consumed, self._scanned)):
            if match.end() - consumed > self.max_chars:
                # Cut an overlong sentence where it would have been cut had its end not yet arrived.
                self._scanned = match.start()
                break
            ends = True if match.group() == "\n" else self._ends_sentence(match, consumed)
            if ends is None:
                self._waiting = True
                self._scanned = match.start()
                return None
            if ends:
                return self._take(match.end())
        else:
            # Punctuation at the very end may yet be followed by white space: look at it again then.
            self._scanned = max(consumed, len(text.rstrip(_END_MARKS)))
        if len(text) - consumed > self.max_chars:
            window = text[consumed : consumed + self.max_chars]
            breaks = list(_SOFT_BREAK.finditer(window))
            cut = breaks[-1].end() if breaks else self.max_chars
            return self._take(consumed + cut)
        return None

    def _ends_sentence(self, match: re.Match, consumed: int) -> bool | None:
        """Does this punctuation end the sentence? None: it depends on a character still to come."""
        marks = match.group().rstrip(_CLOSERS)
        if _ELLIPSIS.fullmatch(marks):
            return False  # "Well... I think so."
        if marks != ".":
            return True
        text, start = self._text, match.start()
        word = text[max(text.rfind(" ", consumed, start), text.rfind("\n", consumed, start)) + 1 : start]
        bare = word.lower().rstrip(".")
        if bare in _ABBREVIATIONS or (len(bare) == 1 and bare.isalpha() and word[0].isupper()):
            return False  # "Dr. Smith", "J. R. R. Tolkien"
        if bare in _SOFT_ABBREVIATIONS:
            after = text[match.end() :].lstrip(" \t")
            if not after:
                return None
            return after[0].isupper() or after[0] == "\n"
        return True

    def _take(self, end: int) -> Sentence:
        raw = self._text[self._consumed : end]
        stripped = raw.strip()
        start = self._consumed + (raw.find(stripped) if stripped else 0)
        self._consumed = end
        if not stripped:
            return Sentence(text="", start=0, end=0)
        shown_start, shown_end = self._span(start, start + len(stripped))
        self._shown_until = shown_end
        # Gaps left by markup that is not said: "Title ." → "Title."
        text = _SPACE_BEFORE_STOP.sub("", " ".join(stripped.split()))
        return Sentence(text=text, start=shown_start, end=shown_end)

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """The displayed span of the spoken text [start, end), widened over silent markup around it."""
        first = bisect.bisect_right(self._starts, start) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        shown_start = self._displayed(first, start, False)
        shown_end = self._displayed(last, end, True)
        pieces = self._pieces
        while first > 0 and not pieces[first - 1].text and pieces[first - 1].end == shown_start:
            first -= 1
            if pieces[first].start < self._shown_until:
                break
            shown_start = pieces[first].start
        while last + 1 < len(pieces) and not pieces[last + 1].text and pieces[last + 1].start == shown_end:
            last += 1
            shown_end = pieces[last].end
        return shown_start, shown_end

    def _displayed(self, index: int, offset: int, is_end: bool) -> int:
        """The displayed offset of a spoken one in the piece at ``index`` (just after its character, for an end)."""
        piece, piece_start = self._pieces[index], self._starts[index]
        if piece.verbatim:  # spoken as shown: map character by character
            return piece.start + offset - piece_start
        return piece.end if is_end else piece.start
