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
a pause anyway. A first sentence with no clause break is cut as an overlong
one past ``first_segment_max_chars``: under load a model writes a word in
tens of milliseconds, and the first sound waits for the whole first segment to
be written. Every later segment is a whole sentence, unless it is longer
than ``segment_max_chars``. Synthesis of a segment is not interrupted, so a
long one holds a core for long, and a new reply's first clause may wait behind
it: cut in pieces of at most VOICE_SEGMENT_MAX_CHARS (40: about 250 ms of CPU for
one Piper thread, 2.5 s of speech; 24 would be 150 ms, but each piece is said as
a sentence of its own), that first clause waits behind no more than one short
segment. A piece ends, in this order of preference:

- at the last clause break (a comma, semicolon, colon or dash, then a space)
  within the limit, else at the first one up to a quarter past it: a phrase
  is not cut when a clause break is near;
- before the last word that opens a word group (``_GROUP_WORDS``: "and",
  "because", "which", ...; "| so that", "| by which" go together);
- before the last preposition or article (``_PHRASE_WORDS``);
- at the last space within the limit, else at the first one past it.

Never inside a word, nor after a word that binds to the next ("to", "the"),
nor inside text said otherwise than shown ("nineteen dollars and ninety-nine
cents" for "$19.99"), and neither part shorter than ``segment_min_chars``
("Yes," alone sounds clipped). A cut is made as soon as enough text has
arrived that what is still to come cannot move it, so streamed text is cut
exactly where the whole text would be.
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
# An overlong sentence is best cut before these words, which open a word group
# of their own ("… took the train | because …", "… the book | which …"). A short
# list on purpose; "to" and "of" are in no list: they often bind to the word
# before them ("want | to go", "a lot | of"), so a cut before them sounds broken.
_GROUP_WORDS = (
    "and but or because although though while whereas when where which who whose that if unless until since"
    " with without"
).split()
# These go with a group word after them: a cut comes before them ("| by which", "| so that", "| even if").
_LEADING_WORDS = frozenset(
    "and or but by in of on at to for from with into about through so such now even as only".split()
)
_GROUP_START = re.compile(rf"\s+(?=(?:{'|'.join(_GROUP_WORDS)})\b)")
# Failing those, before a phrase: a preposition or an article ("… make food | from carbon dioxide").
_PHRASE_WORDS = "the a an in on at from for by into onto about through over under after before during between".split()
_PHRASE_START = re.compile(rf"\s+(?=(?:{'|'.join(_PHRASE_WORDS)})\b)")
# A piece never ends on a word that binds to the next one ("… use sunlight to | make food").
_BINDS_FORWARD = _LEADING_WORDS | frozenset(_PHRASE_WORDS)
_SPACES = re.compile(r"\s+")
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True)
class Sentence:
    text: str  # what to say
    start: int  # the displayed characters it stands for: [start, end)
    end: int


class SentenceSplitter:
    def __init__(
        self,
        max_chars: int = 240,
        first_clause_chars: int = 0,
        segment_max_chars: int = 0,
        segment_min_chars: int = 16,
        first_segment_max_chars: int = 0,
    ) -> None:
        """``first_clause_chars``: end the first segment at a clause break this far in (0: never).

        ``segment_max_chars``: cut every later segment longer than this (0: never), in pieces
        of at least ``segment_min_chars`` (at most half the limit); ``first_segment_max_chars``:
        the same for the first segment (0: never).
        """
        self.max_chars = max_chars
        self.first_clause_chars = first_clause_chars
        self.segment_max_chars = segment_max_chars
        self.segment_min_chars = segment_min_chars
        self.first_segment_max_chars = first_segment_max_chars
        self._said = False  # a segment has been emitted: the next ones are "later" ones
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
        found = []
        while (cut := self._cut(len(self._text), certain=True)) is not None:
            found.append(self._take(cut))
        rest = self._take(len(self._text))
        return [*found, rest] if rest.text else found

    def _next_sentence(self) -> Sentence | None:
        text, consumed = self._text, self._consumed
        self._waiting = False
        if not self._said and self.first_clause_chars:  # not consumed == 0: a blank line may come first
            clause = _CLAUSE_BREAK.search(text, consumed + self.first_clause_chars)
            sentence_end = _BOUNDARY.search(text, consumed)
            # Only a clause that ends before the first sentence does, and is
            # certainly followed by more text.
            if clause and (sentence_end is None or clause.start() < sentence_end.start()):
                if len(text) > clause.end():
                    return self._take(clause.end())
        end = None  # where the segment certainly ends, without segment_max_chars
        bound = len(text.rstrip(_END_MARKS))  # else: its sentence ends no sooner than this
        for match in _BOUNDARY.finditer(text, max(consumed, self._scanned)):
            if match.end() - consumed > self.max_chars:
                # Cut an overlong sentence where it would have been cut had its end not yet arrived.
                self._scanned = match.start()
                break
            ends = True if match.group() == "\n" else self._ends_sentence(match, consumed)
            if ends is None:
                self._waiting = True
                self._scanned = match.start()
                bound = match.end()
                break
            if ends:
                end = match.end()
                break
        else:
            # Punctuation at the very end may yet be followed by white space: look at it again then.
            self._scanned = max(consumed, len(text.rstrip(_END_MARKS)))
        if end is None and not self._waiting and len(text) - consumed > self.max_chars:
            window = text[consumed : consumed + self.max_chars]
            breaks = list(_SOFT_BREAK.finditer(window))
            end = consumed + (breaks[-1].end() if breaks else self.max_chars)
        if end is not None:
            cut = self._cut(end, certain=True)
        elif self._limit and len(text) - consumed > self._limit:
            # A cut at max_chars would come after the last space within its reach: the
            # segment certainly runs on to there (and to its sentence's earliest end).
            space = max(text.rfind(" ", consumed, consumed + self.max_chars), consumed)
            cut = self._cut(min(bound, space), certain=False)
        else:
            cut = None
        if cut is not None:
            return self._take(cut)
        return None if end is None else self._take(end)

    def _cut(self, end: int, certain: bool) -> int | None:
        """Where to cut the segment running from the consumed text to ``end``, if it is too long.

        ``certain``: it ends there; else it ends there or later, and a cut is made only
        once no text still to come could move it. None: no cut (yet).
        """
        limit, text = self._limit, self._text
        first = _NON_SPACE.search(text, self._consumed, end)
        if not limit or first is None:
            return None
        start = first.start()
        end = start + len(text[start:end].rstrip())
        if end - start <= limit:
            return None
        # A clause break a little past the limit beats a cut inside a phrase within it.
        clause_limit = limit + limit // 4
        if not certain and end <= start + clause_limit:
            return None  # a better cut may be among the words still to come
        shortest = min(self.segment_min_chars, limit // 2)
        # Searched up to the (earliest) end only, where white space follows: a word found
        # whole ("and", not "android") is whole. (Cut, start of the rest) pairs.
        clauses = [(m.end(), m.end()) for m in _CLAUSE_BREAK.finditer(text, start, min(len(text), end + 1))]
        spaces = [(m.start(), m.end()) for m in _SPACES.finditer(text, start, end)]
        groups, phrases = [], []
        for pattern, found in ((_GROUP_START, groups), (_PHRASE_START, phrases)):
            for match in pattern.finditer(text, start, end):
                cut, rest = match.start(), match.end()
                before = text.rfind(" ", start, cut)
                if before >= start and text[before + 1 : cut].lower() in _LEADING_WORDS:
                    cut, rest = before, before + 1  # "the process | by which", not "by | which"
                found.append((cut, rest))
        preferred = (
            [c for c in reversed(clauses) if c[0] - start <= limit],
            [c for c in clauses if limit < c[0] - start <= clause_limit],
            [c for c in reversed(groups) if c[0] - start <= limit],
            [c for c in reversed(phrases) if c[0] - start <= limit],
            [c for c in reversed(spaces) if c[0] - start <= limit],
            [c for c in spaces if c[0] - start > limit],  # a word past the limit, rather than no cut
        )
        for cuts in preferred:
            for cut, rest in cuts:
                last_word = text[max(text.rfind(" ", start, cut), start - 1) + 1 : cut].lower()
                if cut - start < shortest or last_word in _BINDS_FORWARD or self._inside_piece(cut):
                    continue
                if len(text[rest:end].strip()) >= shortest:
                    return cut
                if not certain:
                    return None  # the best cut so far, once enough text follows it
        return None

    @property
    def _limit(self) -> int:
        """The length past which the next segment is cut (0: never)."""
        return self.segment_max_chars if self._said else self.first_segment_max_chars

    def _inside_piece(self, cut: int) -> bool:
        """Would a cut here split a piece said otherwise than shown ("nineteen dollars and ...")?

        Its span could not be shared between the two parts, and its words belong together.
        """
        index = bisect.bisect_right(self._starts, cut - 1) - 1
        piece = self._pieces[index]
        return not piece.verbatim and self._starts[index] + len(piece.text.rstrip()) > cut

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
        self._said = True
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
