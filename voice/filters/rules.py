"""What a spoken-form rule is: a regular expression and the words for what it matches.

``voice.filters.normalize`` joins every rule into one alternation, so group names
inside a pattern carry the rule's name as a prefix (``money_amount``) to stay unique.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str
    # The words for a match, or None to leave it as written; the second argument
    # is what the rule's module reads with (numbers.Reader, for a language).
    speak: Callable[[re.Match, Any], str | None]
    # A character class for where a match can start: rules sharing one are tried only there.
    starts: str = ""


def preceding_word(match: re.Match) -> str:
    """The word before the match, lower-cased and without punctuation ("" at the start of a line)."""
    before = match.string[max(0, match.start() - 40) : match.start()]
    line = before.rsplit("\n", 1)[-1].split()
    return line[-1].strip(".,;:!?()[]\"'“”‘’").lower() if line else ""


def following(match: re.Match) -> str:
    """The text after the match, as far as it is known for certain (never the held-back tail)."""
    return match.string[match.end() : match.endpos]


def starts_sentence(match: re.Match) -> bool:
    before = match.string[max(0, match.start() - 40) : match.start()].rstrip(" \t")
    return not before or before[-1] in ".!?\n:"


def ends_sentence(match: re.Match) -> bool:
    """Is the period that ends the match also the end of a sentence (a capital, or the line's end, follows)?"""
    rest = following(match)
    stripped = rest.lstrip(" \t")
    return not stripped or stripped[0] == "\n" or (len(stripped) < len(rest) and stripped[0].isupper())


def alternation(words) -> str:
    """A regular expression matching any of ``words``, longest first."""
    return "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
