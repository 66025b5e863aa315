"""``Piece``: some text to say and the span of displayed text it stands for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Piece:
    text: str  # what to say; may be empty (markup that is not spoken)
    start: int  # the displayed characters it stands for: [start, end)
    end: int

    @property
    def verbatim(self) -> bool:
        """Said as shown, so each spoken character stands for the displayed one at the same place."""
        return len(self.text) == self.end - self.start


def append_joined(pieces: list[Piece], piece: Piece) -> None:
    """Append ``piece``, joining it to the last one if both are text said as written and touch.

    Fewer, longer pieces make the later stages cheaper. Silent pieces stay apart (they widen
    sentence spans), and so do line breaks (where a line's end is looked for).
    """
    if pieces and piece.text and piece.verbatim and "\n" not in piece.text:
        last = pieces[-1]
        if last.end == piece.start and last.text and last.verbatim and "\n" not in last.text:
            pieces[-1] = Piece(last.text + piece.text, last.start, piece.end)
            return
    pieces.append(piece)
