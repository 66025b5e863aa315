"""Markdown read aloud: the markup goes, the words stay, and each piece keeps its displayed span.

The reply streams in deltas of a few characters and speech must start before a block is
complete, so this is a line-at-a-time scanner rather than a parser run on whole blocks: a
line's block prefix ("- ", "## ", "> ", "1. ", a fence, a table row) is decided from its first
characters, and inline markup as each construct closes. Only what the characters still to
come could change is held back. markdown-it-py supplies CommonMark's own rules for link
destinations and titles, inline HTML, autolinks and entities.

What is said: text as written; nothing for emphasis, heading and list markers, quote markers,
rules, HTML tags, link destinations, footnote marks and reference definitions; a table row as
"header: cell, header: cell"; a code block as one short phrase. A code span is said as
written, without its backticks. Lines are kept: each is a sentence of its own.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from markdown_it.common.entities import entities
from markdown_it.common.html_re import HTML_TAG_RE
from markdown_it.helpers import parseLinkDestination, parseLinkTitle
from markdown_it.rules_inline.autolink import AUTOLINK_RE, EMAIL_RE
from markdown_it.rules_inline.entity import DIGITAL_RE, NAMED_RE

from .pieces import Piece

_ASCII_PUNCTUATION = frozenset(r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~""")
_SPECIAL = re.compile(r"[\\*_~`\[\]!<&]")
_PLAIN_BREAK = re.compile(r"[\\*_~`\[\]!<&\n]")  # markup or a line end: the scanner must look
_PROSE = frozenset({"paragraph", "item", "heading"})
_HEADING_SPECIAL = re.compile(r"[\\*_~`\[\]!<&]|(?<=[ \t])#")

_FENCE = re.compile(r"`{3,}|~{3,}")
_FENCE_START = re.compile(r"`{1,2}|~{1,2}")
_FENCE_CLOSE = re.compile(r"[ \t>]*(`{3,}|~{3,})[ \t]*")
_HASHES = re.compile(r"#+")
_BULLET = re.compile(r"(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_ORDINAL_START = re.compile(r"\d{1,9}[.)]?")
_TASK = re.compile(r"\[[ xX]\][ \t]+")
_TASK_START = re.compile(r"\[(?:[ xX]\]?)?")
_THEMATIC = re.compile(r"(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,}|=+[ \t]*")
_MARKERS_ONLY = re.compile(r"[-*_=+ \t]+")  # could still become a thematic break or a list item
_DELIMITER_ROW = re.compile(r"[ \t>]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*")
_DELIMITER_START = re.compile(r"[ \t>|:\-]*")
_DEFINITION = re.compile(r"\[(?!\^)[^\]]{1,100}\]:(?:[ \t]|$)")
_FOOTNOTE = re.compile(r"\[\^[^\]\s]{1,40}\]:[ \t]*")
_LABEL_START = re.compile(r"\[[^\]]{0,100}\]?")
_CITATION = re.compile(r"\[\^?\d{1,3}\]|\[\^[^\]\s]{1,40}\]")
_CITATION_START = re.compile(r"\[(?:\^[^\]\s]{0,40}|\d{0,3})")
_ENTITY_START = re.compile(r"&#?[A-Za-z0-9]{0,31}")
_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _closing_ticks(count: int) -> re.Pattern:
    return re.compile(rf"(?<!`)`{{{count}}}(?!`)")


@dataclass
class _Code:
    start: int  # displayed offset where the block starts
    fence: str = ""  # "`" or "~"; "" for an indented block
    length: int = 0
    opener: bool = True  # the fence's own line is still to be consumed
    last: int = 0  # indented: displayed end of its last code line
    gap: str = ""  # indented: blank lines seen since, which may or may not belong to it


class MarkdownText:
    """Displayed markdown in, plain pieces out (``Piece``), as the text streams."""

    def __init__(self, code_phrase: str) -> None:
        self.code_phrase = code_phrase
        self._text = ""  # displayed text from the start of the current line (or held block) on
        self._base = 0  # displayed offset of self._text[0]
        self._pos = 0  # everything in self._text before this has been turned into pieces
        self._line: str | None = None  # the current line's kind, once its prefix is known
        self._line_start = 0
        self._brackets = 0  # "[" still open on this line
        self._after_blank = True  # an indented line starts code only after a blank line
        self._in_list = False
        self._code: _Code | None = None
        self._header: list[str] | None = None  # the cells of the current table's header
        self._soft_break: int | None = None  # a paragraph's line break, said once the next line is known
        self._quotes = 0  # the current line's block-quote depth

    def feed(self, delta: str) -> list[Piece]:
        start = len(self._text)
        self._text += delta
        if (
            self._line in _PROSE
            and self._pos == start
            and not _PLAIN_BREAK.search(delta)
            and not (self._line == "heading" and "#" in delta)
        ):
            # Most deltas are words in the middle of a line: said as written, with no scanning.
            self._pos += len(delta)
            return [Piece(delta, self._base + start, self._base + self._pos)]
        return self._run(final=False)

    def flush(self) -> list[Piece]:
        out = self._run(final=True)
        self._settle_break(out, continues=False)
        code = self._code
        if code is not None:
            if code.fence:
                out.append(Piece(self.code_phrase, code.start, self._base + len(self._text)))
            else:
                self._close_indented(out)
            self._code = None
        return out

    # --- Lines ---------------------------------------------------------------
    def _run(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        text = self._text
        while self._pos < len(text):
            newline = text.find("\n", self._pos)
            complete = newline >= 0 or final
            end = newline if newline >= 0 else len(text)
            if self._code is not None:
                if not self._code_line(out, end, complete, newline >= 0):
                    break
                continue
            if self._line is None:
                if not self._start_line(out, end, complete, final):
                    break
                continue
            reached = self._inline(out, self._pos, end, complete)
            self._pos = reached
            if reached < end or newline < 0:
                break
            self._end_line(out, newline)
        if self._line is not None and final:
            self._end_line(out, None)
        keep = self._line_start if self._line is not None else self._pos
        if keep:
            self._text, self._base = text[keep:], self._base + keep
            self._pos -= keep
            self._line_start -= keep
        return out

    def _end_line(self, out: list[Piece], newline: int | None) -> None:
        if newline is not None:
            if self._line == "paragraph" and not self._text.endswith(("  ", "\\"), self._line_start, newline):
                # A soft line break: the paragraph may go on, and then so does its sentence.
                self._soft_break = self._base + newline
            else:
                out.append(Piece("\n", self._base + newline, self._base + newline + 1))
            self._pos = newline + 1
        self._line = None
        self._brackets = 0

    def _settle_break(self, out: list[Piece], continues: bool) -> None:
        """Say the held line break: a space if the next line continues the paragraph, else a line break."""
        if self._soft_break is not None:
            out.append(Piece(" " if continues else "\n", self._soft_break, self._soft_break + 1))
            self._soft_break = None

    def _start_line(self, out: list[Piece], end: int, complete: bool, final: bool) -> bool:
        """Decide what the line starting at self._pos is, and say its prefix; False to wait for more."""
        text, pos = self._text, self._pos
        self._line_start = pos
        i = pos
        while i < end and text[i] in " \t":
            i += 1
        if i == end:
            if not complete:
                return False
            self._settle_break(out, continues=False)
            self._emit(out, pos, end)
            self._after_blank = True
            self._header = None
            self._set_line("blank", end)
            return True
        indent = _width(text[pos:i])
        if indent >= 4 and self._after_blank and not self._in_list:
            self._settle_break(out, continues=False)
            self._open_code(out, i, _Code(start=self._base + i))
            return True
        j = i
        while j < end and text[j] == ">":
            j += 1
            while j < end and text[j] in " \t":
                j += 1
        if j == end and not complete:
            return False
        char = text[j] if j < end else ""
        kind, content = "paragraph", j
        if char in "`~":
            if _FENCE.match(text, j, end):
                fence = _FENCE.match(text, j, end).group()
                self._settle_break(out, continues=False)
                self._open_code(out, i, _Code(start=self._base + i, fence=fence[0], length=len(fence)))
                self._header = None
                return True
            if not complete and _FENCE_START.fullmatch(text, j, end):
                return False
        elif char == "#":
            hashes = _HASHES.match(text, j, end).end()
            if hashes == end and not complete:
                return False
            if hashes - j <= 6 and (hashes == end or text[hashes] in " \t"):
                kind, content = "heading", _skip_spaces(text, hashes, end)
        elif char in "-*_=+" and _MARKERS_ONLY.fullmatch(text, j, end):
            if not complete:
                return False
            if _THEMATIC.fullmatch(text, j, end):
                kind, content = "rule", end
        elif char.isdigit() and not complete and _ORDINAL_START.fullmatch(text, j, end):
            return False
        elif char == "|":
            return self._table_row(out, j, end, complete, final)
        elif char == "[":
            if not complete and _LABEL_START.fullmatch(text, j, end):
                return False
            footnote = _FOOTNOTE.match(text, j, end)
            if footnote:
                content = footnote.end()
            elif _DEFINITION.match(text, j, end):
                kind, content = "rule", end  # a reference definition: its address is not said
        if kind == "paragraph" and char in "-*+0123456789" and (bullet := _BULLET.match(text, j, end)):
            kind, content = "item", bullet.end()
            if not complete and _TASK_START.fullmatch(text, content, end):
                return False
            if task := _TASK.match(text, content, end):
                content = task.end()
        if content == end and not complete:
            return False  # more spaces, or a task box, may still belong to the prefix
        if kind != "item" and indent == 0:
            self._in_list = False
        elif kind == "item":
            self._in_list = True
        quotes = text.count(">", i, j)
        self._settle_break(out, continues=kind == "paragraph" and quotes == self._quotes)
        self._quotes = quotes
        self._after_blank = False
        self._header = None
        self._emit(out, pos, i)  # indentation: white space, not part of what the line says
        self._silent(out, i, content)
        self._set_line(kind, content)
        return True

    def _set_line(self, kind: str, content: int) -> None:
        self._line = kind
        self._pos = content

    # --- Code blocks -----------------------------------------------------------
    def _open_code(self, out: list[Piece], start: int, code: _Code) -> None:
        """A code block starts at ``start``; its indentation is white space before it."""
        self._emit(out, self._pos, start)
        self._pos = start
        self._code = code

    def _code_line(self, out: list[Piece], end: int, complete: bool, newline: bool) -> bool:
        code, text, pos = self._code, self._text, self._pos
        after = end + 1 if newline else end
        if code.fence:
            if not complete:
                return False
            closing = not code.opener and _FENCE_CLOSE.fullmatch(text, pos, end)
            code.opener = False
            self._pos = after
            if closing and closing.group(1)[0] == code.fence and len(closing.group(1)) >= code.length:
                out.append(Piece(self.code_phrase, code.start, self._base + end))
                if newline:
                    out.append(Piece("\n", self._base + end, self._base + end + 1))
                self._code = None
                self._after_blank = False
            return True
        i = pos
        while i < end and text[i] in " \t":
            i += 1
        if i == end and not code.opener:  # blank so far
            if not complete:
                return False
            code.gap += text[pos:after]
            self._pos = after
            return True
        if code.opener or _width(text[pos:i]) >= 4:
            if not complete:
                return False
            code.opener = False
            code.last, code.gap = self._base + end, text[end:after]
            self._pos = after
            return True
        # This line is not code: the block ended with the last code line.
        self._close_indented(out)
        self._code = None
        self._after_blank = True
        return True

    def _close_indented(self, out: list[Piece]) -> None:
        code = self._code
        out.append(Piece(self.code_phrase, code.start, code.last))
        if code.gap:
            out.append(Piece(code.gap, code.last, code.last + len(code.gap)))

    # --- Tables ------------------------------------------------------------------
    def _table_row(self, out: list[Piece], bar: int, end: int, complete: bool, final: bool) -> bool:
        """A line starting with "|": said as a whole once complete."""
        if not complete:
            return False
        self._settle_break(out, continues=False)
        text = self._text
        newline = end if end < len(text) else None
        if self._header is None and newline is not None:
            # A first row is a header if a delimiter row follows.
            next_end = text.find("\n", newline + 1)
            if next_end < 0:
                next_end = len(text)
                if not final and _DELIMITER_START.fullmatch(text, newline + 1, next_end):
                    return False
            if _DELIMITER_ROW.fullmatch(text, newline + 1, next_end):
                self._header = [words for words, _ in self._cells(bar, end)]
                self._silent(out, self._pos, end)
                out.append(Piece("\n", self._base + end, self._base + end + 1))
                self._silent(out, newline + 1, next_end)
                self._pos = next_end
                self._line = "rule"
                self._after_blank = False
                return True
        header = self._header or []
        said = False
        previous = self._pos
        for index, (words, (start, stop, pieces)) in enumerate(self._cells(bar, end)):
            joiner = ""
            if words:
                name = header[index] if index < len(header) else ""
                joiner = (", " if said else "") + (f"{name}: " if name else "")
                said = True
            out.append(Piece(joiner, self._base + previous, self._base + start))
            out.extend(pieces)
            previous = stop
        self._silent(out, previous, end)
        self._pos = end
        self._line = "row"
        self._after_blank = False
        self._in_list = False
        return True

    def _cells(self, bar: int, end: int) -> list[tuple[str, tuple[int, int, list[Piece]]]]:
        """Each cell's words, and its content span and pieces."""
        text = self._text
        bounds, start = [], bar + 1
        for i in range(bar + 1, end + 1):
            if i == end or (text[i] == "|" and text[i - 1] != "\\"):
                bounds.append((start, i))
                start = i + 1
        if len(bounds) > 1 and not text[bounds[-1][0] : bounds[-1][1]].strip():
            bounds.pop()  # after the closing "|"
        cells = []
        for start, stop in bounds:
            while start < stop and text[start] in " \t":
                start += 1
            while stop > start and text[stop - 1] in " \t":
                stop -= 1
            pieces: list[Piece] = []
            brackets, self._brackets = self._brackets, 0
            self._inline(pieces, start, stop, complete=True)
            self._brackets = brackets
            cells.append((" ".join("".join(piece.text for piece in pieces).split()), (start, stop, pieces)))
        return cells

    # --- Inline --------------------------------------------------------------------
    def _inline(self, out: list[Piece], i: int, end: int, complete: bool) -> int:
        """Say the line's content from i to end; returns where it had to stop (end when done)."""
        text = self._text
        special = _HEADING_SPECIAL if self._line == "heading" else _SPECIAL
        while i < end:
            found = special.search(text, i, end)
            j = found.start() if found else end
            if j > i:
                self._emit(out, i, j)
            if found is None:
                return end
            k = self._markup(out, j, end, complete)
            if k is None:
                return j
            i = k
        return end

    def _markup(self, out: list[Piece], j: int, end: int, complete: bool) -> int | None:
        """Say the markup starting at j; returns where it ends, or None if what follows is still to come."""
        text = self._text
        char = text[j]
        if char in "*_~#":
            k = j
            while k < end and text[k] == char:
                k += 1
            if k == end and not complete:
                return None
            if char == "#":
                rest = _skip_spaces(text, k, end)
                if rest == end and not complete:
                    return None  # the closing sequence, if the line ends here
                # Hashes inside a heading are not said either; its closing sequence takes the spaces too.
                self._silent(out, j, k if rest < end else end)
                return k if rest < end else end
            before = text[j - 1] if j else " "
            after = text[k] if k < end else " "
            if (char == "~" and k - j == 1) or (char == "_" and before.isalnum() and after.isalnum()):
                self._emit(out, j, k)  # "~5" and "snake_case" are not markup
            else:
                self._silent(out, j, k)
            return k
        if j + 1 >= end and char in "\\]!<&" and not complete:
            return None
        if char == "\\":
            if j + 1 < end and text[j + 1] in _ASCII_PUNCTUATION:
                self._silent(out, j, j + 1)
                self._emit(out, j + 1, j + 2)
                return j + 2
            if j + 1 == end:  # a hard line break
                self._silent(out, j, end)
                return end
            self._emit(out, j, j + 1)
            return j + 1
        if char == "`":
            return self._code_span(out, j, end, complete)
        if char == "[":
            citation = _CITATION.match(text, j, end)
            if citation:
                self._silent(out, j, citation.end())
                return citation.end()
            if not complete and _CITATION_START.fullmatch(text, j, end):
                return None
            self._brackets += 1
            self._silent(out, j, j + 1)
            return j + 1
        if char == "]":
            if self._brackets and j + 1 < end and text[j + 1] in "([":
                # An inline link's "(destination)", or a reference link's "[label]": neither is said.
                if text[j + 1] == "(":
                    # No ")" yet, no link yet: the destination is still streaming in.
                    k = self._destination_end(j + 2, end) if ")" in text[j + 2 : end] else None
                else:
                    k = text.find("]", j + 2, end) + 1 or None
                if k is None and not complete:
                    return None
                if k is not None:
                    self._brackets -= 1
                    self._silent(out, j, k)
                    return k
            self._brackets = max(0, self._brackets - 1)
            self._silent(out, j, j + 1)
            return j + 1
        if char == "!":
            if j + 1 < end and text[j + 1] == "[":
                self._silent(out, j, j + 1)  # an image: its description is said
            else:
                self._emit(out, j, j + 1)
            return j + 1
        if char == "<":
            return self._angle(out, j, end, complete)
        return self._entity(out, j, end, complete)

    def _code_span(self, out: list[Piece], j: int, end: int, complete: bool) -> int | None:
        text = self._text
        k = j
        while k < end and text[k] == "`":
            k += 1
        if k == end and not complete:
            return None
        closing = _closing_ticks(k - j).search(text, k, end)
        if closing is None or (closing.end() == end and not complete):
            if not complete:
                return None
            self._silent(out, j, k)  # never closed: the backticks are still not said
            return k
        start, stop = k, closing.start()
        if stop - start >= 2 and text[start] == " " and text[stop - 1] == " " and text[start:stop].strip():
            start, stop = start + 1, stop - 1
        self._silent(out, j, start)
        self._emit(out, start, stop)
        self._silent(out, stop, closing.end())
        return closing.end()

    def _destination_end(self, p: int, end: int) -> int | None:
        """Where "(destination "title")" starting at p ends, by CommonMark's rules; None if not (yet) one."""
        text = self._text
        p = _skip_spaces(text, p, end)
        if p < end and text[p] == ")":
            return p + 1
        destination = parseLinkDestination(text, p, end)
        if not destination.ok:
            return None
        q = _skip_spaces(text, destination.pos, end)
        if q < end and text[q] == ")":
            return q + 1
        if destination.pos < q < end:
            title = parseLinkTitle(text, q, end)
            if title.ok:
                r = _skip_spaces(text, title.pos, end)
                if r < end and text[r] == ")":
                    return r + 1
        return None

    def _angle(self, out: list[Piece], j: int, end: int, complete: bool) -> int | None:
        text = self._text
        if j + 1 == end or not (text[j + 1].isalpha() or text[j + 1] in "/!?"):
            self._emit(out, j, j + 1)  # "a < b"
            return j + 1
        close = text.find(">", j, end)
        if close < 0:
            if not complete:
                return None
            self._emit(out, j, j + 1)
            return j + 1
        tag = HTML_TAG_RE.match(text, j, close + 1)
        if tag and tag.end() == close + 1:
            out.append(Piece(" " if _BREAK_TAG.fullmatch(tag.group()) else "", self._base + j, self._base + close + 1))
            return close + 1
        inner = text[j + 1 : close]
        if AUTOLINK_RE.match(inner) or EMAIL_RE.match(inner):
            self._silent(out, j, j + 1)
            self._emit(out, j + 1, close)
            self._silent(out, close, close + 1)
            return close + 1
        self._emit(out, j, j + 1)
        return j + 1

    def _entity(self, out: list[Piece], j: int, end: int, complete: bool) -> int | None:
        text = self._text
        k = _ENTITY_START.match(text, j, end).end()
        if k < end and text[k] == ";":
            written = text[j : k + 1]
            named = NAMED_RE.fullmatch(written)
            if DIGITAL_RE.fullmatch(written) or (named and named.group(1) in entities):
                said = html.unescape(written).replace("\xa0", " ")
                out.append(Piece(said, self._base + j, self._base + k + 1))
                return k + 1
        elif k == end and not complete:
            return None
        self._emit(out, j, j + 1)
        return j + 1

    # --- Output -------------------------------------------------------------------
    def _emit(self, out: list[Piece], i: int, j: int) -> None:
        """Said as written."""
        if j > i:
            out.append(Piece(self._text[i:j], self._base + i, self._base + j))

    def _silent(self, out: list[Piece], i: int, j: int) -> None:
        if j > i:
            out.append(Piece("", self._base + i, self._base + j))


def _width(indent: str) -> int:
    width = 0
    for char in indent:
        width = width + 4 - width % 4 if char == "\t" else width + 1
    return width


def _skip_spaces(text: str, i: int, end: int) -> int:
    while i < end and text[i] in " \t":
        i += 1
    return i
