"""Written forms → spoken words, as the text streams: numbers, links, e-mail, emoji, abbreviations.

Every rule matches within one word, or runs on only from a *sticky* word (a number, a month,
"Dr.", a dash) into the next. So holding back the last word, which may still grow, and the
sticky words right before it is all the waiting any rule needs, and what is released reads
exactly as it would had the whole reply arrived at once.
"""

from __future__ import annotations

import bisect
import re
from functools import cache

from . import abbreviations, emoji, links, numbers
from .pieces import Piece, append_joined
from .rules import Rule, alternation

_CONTEXT = 100  # plain characters kept before the unsaid ones, for rules that look back ("in 1999")
_SPACES = " \t\u00a0\u202f"
_SPACE = re.compile(r"\s")


@cache
def _compile(language: str, emoji_mode: str) -> tuple[re.Pattern, dict, re.Pattern, re.Pattern]:
    reader = numbers.Reader(language)
    written_in = language if language in abbreviations.ABBREVIATIONS else "en"
    found: list[Rule] = [
        *emoji.rules(emoji_mode),
        *links.rules(),
        *numbers.rules(reader),
        *abbreviations.rules(written_in),
    ]
    pattern = re.compile(_alternatives(found))
    speakers = {rule.name: rule.speak for rule in found}
    # A word is sticky when it ends with one of these (rules may start after "(" or "-": "-St.").
    sticky = re.compile(rf"(?:\S*[^\w.])?(?:{numbers.sticky_words(reader)}|{abbreviations.sticky_words(written_in)})")
    # Running every rule at every character is slow, and most words match none: a rule can only
    # match around a digit, a symbol, a period inside a word, an abbreviation or an initial.
    written = abbreviations.table(written_in)
    trigger = re.compile(
        r"[^\sA-Za-z.,;:!?'\"()\-]|\.(?=[^\s.])|\b[A-Z]\."
        rf"|(?<![\w.])(?:{alternation(word for word in written if word[0].isalpha())})(?![\w])"
    )
    return pattern, speakers, sticky, trigger


def _alternatives(found: list[Rule]) -> str:
    """One pattern for all rules, in order. Each rule (or run of neighbours starting at the same characters)
    is behind one check of the character it starts with, so most positions cost a few cheap tests."""
    groups: list[tuple[str, list[Rule]]] = []
    for rule in found:
        if groups and rule.starts and groups[-1][0] == rule.starts:
            groups[-1][1].append(rule)
        else:
            groups.append((rule.starts, [rule]))
    branches = []
    for starts, rules in groups:
        inner = "|".join(f"(?P<{rule.name}>{rule.pattern})" for rule in rules)
        branches.append(f"(?={starts})(?:{inner})" if starts else inner)
    return "|".join(branches)


class SpokenForms:
    """Plain pieces in, spoken pieces out; each keeps the displayed span it stands for."""

    def __init__(self, language: str = "en", emoji_mode: str = emoji.DROP) -> None:
        self.reader = numbers.Reader(language)
        self._pattern, self._speakers, self._sticky, self._trigger = _compile(self.reader.language, emoji_mode)
        self._text = ""  # plain text: the pieces' texts joined, less what is long said
        self._done = 0  # self._text before this has been said
        self._pieces: list[Piece] = []  # from the first piece not wholly said
        self._offsets: list[int] = []  # where each piece's text starts in self._text
        self._used = 0  # characters of self._pieces[0] already said

    def feed(self, pieces: list[Piece]) -> list[Piece]:
        if not pieces:
            return []
        spaced = False
        for piece in pieces:
            self._offsets.append(len(self._text))
            self._pieces.append(piece)
            self._text += piece.text
            spaced = spaced or _SPACE.search(piece.text) is not None
        # Only white space completes a word: without it, nothing more can be said yet.
        return self._say(self._cut()) if spaced else []

    def flush(self) -> list[Piece]:
        return self._say(len(self._text))

    def _cut(self) -> int:
        """Where the text that can no longer change ends: before the last word and the sticky words before it."""
        text, done = self._text, self._done
        k = len(text)
        while k > done and not text[k - 1].isspace():
            k -= 1
        while k > done:
            j = k
            while j > done and text[j - 1] in _SPACES:
                j -= 1
            word = j
            while word > done and not text[word - 1].isspace():
                word -= 1
            if word == j or not self._sticky.fullmatch(text, word, j):
                break
            k = word
        return k

    def _say(self, cut: int) -> list[Piece]:
        out: list[Piece] = []
        first = self._trigger.search(self._text, self._done, cut) if cut > self._done else None
        if first is not None:
            # Rules match within a word, or from a sticky word into the next: a date may start
            # at the month before the day's digits, and no rule earlier than that.
            start = self._word_start(self._word_start(first.start()) - 1)
            for match in self._pattern.finditer(self._text, start, cut):
                start, end = match.span()
                if start == end or not (self._aligned(start) and self._aligned(end)):
                    continue
                said = self._speakers[match.lastgroup](match, self.reader)
                if said is not None and said != match.group():
                    self._say_as_written(start, out)
                    self._say_instead(start, end, said, out)
        self._say_as_written(cut, out)
        self._done = max(self._done, cut)
        self._forget()
        return out

    def _word_start(self, offset: int) -> int:
        """Where the word holding ``offset`` starts (never before what is said already)."""
        text, done = self._text, self._done
        while offset > done and not text[offset - 1].isspace():
            offset -= 1
        return max(offset, done)

    def _aligned(self, offset: int) -> bool:
        """A rule may start or end here: not inside a piece that is not said as written."""
        index = bisect.bisect_right(self._offsets, offset) - 1
        if index < 0:
            return True
        piece, start = self._pieces[index], self._offsets[index]
        return piece.verbatim or offset == start or offset >= start + len(piece.text)

    def _say_as_written(self, until: int, out: list[Piece]) -> None:
        """The pieces up to plain offset ``until``, with the silent pieces found there."""
        pieces, offsets = self._pieces, self._offsets
        while pieces:
            piece, start = pieces[0], offsets[0]
            stop = start + len(piece.text)
            if start > until or (start == until and piece.text):
                return
            if stop <= until:
                append_joined(out, piece if not self._used else _part(piece, self._used, len(piece.text)))
                del pieces[0], offsets[0]
                self._used = 0
            else:
                append_joined(out, _part(piece, self._used, until - start))
                self._used = until - start
                return

    def _say_instead(self, start: int, end: int, said: str, out: list[Piece]) -> None:
        """One piece saying ``said`` for the plain text [start, end), spanning what it stands for."""
        pieces, offsets = self._pieces, self._offsets
        first = pieces[0]
        shown_start = first.start + self._used if first.verbatim else first.start
        shown_end = shown_start
        while pieces:
            piece, offset = pieces[0], offsets[0]
            stop = offset + len(piece.text)
            if stop > end:
                self._used = end - offset
                shown_end = piece.start + self._used
                break
            if stop == end and not piece.text:
                break  # silent markup right after: said after
            shown_end = piece.end
            del pieces[0], offsets[0]
            self._used = 0
            if stop == end:
                break
        out.append(Piece(said, shown_start, shown_end))

    def _forget(self) -> None:
        """Drop plain text long said, keeping a little for rules that look back."""
        drop = self._done - _CONTEXT
        if drop > 4 * _CONTEXT:
            self._text = self._text[drop:]
            self._done -= drop
            self._offsets = [offset - drop for offset in self._offsets]


def _part(piece: Piece, start: int, stop: int) -> Piece:
    """Part of a piece: exact for text said as written; a piece said otherwise keeps its span on its first part."""
    if piece.verbatim:
        return Piece(piece.text[start:stop], piece.start + start, piece.start + stop)
    if start == 0:
        return Piece(piece.text[start:stop], piece.start, piece.end)
    return Piece(piece.text[start:stop], piece.end, piece.end)
