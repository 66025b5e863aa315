"""A period at the end of each spoken line that has none.

Every line of a reply is a sentence of its own (a heading, a list item, a table row): ending it
with a period makes the voice close it as one, with a falling pitch and a pause.
"""

from __future__ import annotations

from .pieces import Piece

_ENDS = frozenset(".!?…:;,")
_CLOSERS = "\"'”’»)] \t"


class LineStops:
    def __init__(self) -> None:
        self._open = False  # the line so far ends with a word, not with punctuation
        self._end = 0

    def feed(self, pieces: list[Piece]) -> list[Piece]:
        out = []
        for piece in pieces:
            text = piece.text
            if self._open and "\n" in text and not text[: text.index("\n")].strip():
                out.append(Piece(".", piece.start, piece.start))
                self._open = False
            out.append(piece)
            # What decides is the line's last character that is neither space nor closing quote or bracket,
            # whichever piece it came in.
            tail = text.rsplit("\n", 1)[-1].rstrip(_CLOSERS)
            if tail:
                self._open = tail[-1] not in _ENDS
            elif "\n" in text:
                self._open = False
            self._end = piece.end
        return out

    def flush(self, pieces: list[Piece]) -> list[Piece]:
        out = self.feed(pieces)
        if self._open:
            out.append(Piece(".", self._end, self._end))
            self._open = False
        return out
