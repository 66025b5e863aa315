"""Emoji: dropped from speech, or left to the voice, which reads their names ("party popper").

The ``emoji`` package decides what is an emoji; the character class built from its data only
finds candidates quickly, so text without any costs one failed search.
"""

from __future__ import annotations

import re
from functools import cache

import emoji as emoji_data

from .rules import Rule

DROP = "drop"
KEEP = "keep"
CHOICES = (DROP, KEEP)


@cache
def candidates() -> str:
    """A character class of every character that appears in an emoji, digits and ASCII aside."""
    points = sorted({ord(char) for sequence in emoji_data.EMOJI_DATA for char in sequence if ord(char) > 0x7F})
    ranges, start, previous = [], points[0], points[0]
    for point in [*points[1:], None]:
        if point is not None and point == previous + 1:
            previous = point
            continue
        ranges.append(re.escape(chr(start)) + ("" if start == previous else "-" + re.escape(chr(previous))))
        if point is not None:
            start = previous = point
    return "[" + "".join(ranges) + "]"


def without_emoji(text: str) -> str:
    return emoji_data.replace_emoji(text, replace="").replace("\ufe0f", "").replace("\u200d", "")


def rules(mode: str) -> list[Rule]:
    if mode not in CHOICES:
        raise ValueError(f"Emoji mode must be one of {', '.join(CHOICES)}, not {mode!r}.")

    def speak(match: re.Match, reader) -> str | None:
        return without_emoji(match.group()) if mode == DROP else None

    # Keycaps ("1️⃣") first, so their digit is not read as a number.
    return [
        Rule("keycap", r"[0-9#*]\ufe0f?\u20e3", speak, starts="[0-9#*]"),
        Rule("emoji", rf"{candidates()}+", speak, starts="[^\x00-\xa8]"),
    ]
