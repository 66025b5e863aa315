"""What words heard on an open microphone are: the assistant's own voice, an acknowledgement, or a request.

Browsers cancel most of a reply's echo, not all of it; Whisper then hears the
reply's words, garbled ("So in Rola is a wise ID."). Measured in
docs/handsfree.md §5: words the assistant said cover 71-100 % of what leaks
back (fuzzy match, "pairs" for "Paris"), and at most a quarter of a question
spoken over it. Acknowledgements ("mm-hm", "okay") and coughs are not
requests: stopping a reply for them is the classic complaint about voice
assistants, so they never interrupt, while "stop" or "wait" always do.
"""

from __future__ import annotations

import re
from enum import StrEnum

from num2words import num2words
from rapidfuzz import fuzz

# The share of heard words the reply must contain, and how close the two texts must be, for an echo.
ECHO_COVERAGE = 0.7
ECHO_PARTIAL_RATIO = 75
ECHO_MAX_NEW_WORDS = 2
WORD_MATCH = 80  # rapidfuzz ratio for two words to count as the same ("pairs" / "paris")
# Words that stop the assistant at once when it did not say them itself.
COMMANDS = frozenset("stop wait hold pause cancel quiet enough shush hang no nope".split())
# Acknowledgements: heard alone while the assistant speaks, they change nothing.
BACKCHANNELS = frozenset(
    "mm mmm mhm mmhm hm hmm uh huh uhhuh um ah aha oh okay ok yes yeah yep yup right sure alright "
    "cool nice great good fine got it i see thanks thank you".split()
)
# Words too common to show that a request, rather than an echo, is being made.
FUNCTION_WORDS = frozenset(
    "a an the and or but so to of in on at by for with from is are was were be been it its this that "
    "these those i you he she we they me my your our their do does did not what".split()
)


class Meaning(StrEnum):
    NOTHING = "nothing"  # no words at all: noise, a cough
    ECHO = "echo"  # the assistant's own words
    BACKCHANNEL = "backchannel"  # an acknowledgement only
    COMMAND = "command"  # "stop", "wait": a request to stop talking
    SPEECH = "speech"  # words of the person's own
    UNSURE = "unsure"  # too few new words yet to tell


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; numbers in words ("14" and "fourteen" match)."""
    found = []
    for token in re.findall(r"[\w']+", text.lower().replace("-", " ")):
        token = token.strip("'")
        if token.isdigit() and len(token) < 10:
            found.extend(re.findall(r"[a-z]+", num2words(int(token))))
        elif token:
            found.append(token)
    return found


def _in_vocabulary(word: str, said: set[str]) -> bool:
    if word in said:
        return True
    return any(fuzz.ratio(word, other) >= WORD_MATCH for other in said if abs(len(other) - len(word)) < 4)


def classify(heard: str, said: str = "") -> Meaning:
    """What ``heard`` is, given what the assistant was saying meanwhile (``said``; empty if nothing)."""
    heard_words = words(heard)
    if not heard_words:
        return Meaning.NOTHING
    said_words = words(said)
    if not said_words:
        return Meaning.SPEECH  # nothing to echo and nobody to interrupt: even "yes" answers something
    vocabulary = set(said_words)
    new = [word for word in heard_words if not _in_vocabulary(word, vocabulary)]
    if any(word in COMMANDS for word in new):
        return Meaning.COMMAND
    coverage = 1 - len(new) / len(heard_words)
    if (
        coverage >= ECHO_COVERAGE
        and len(new) <= ECHO_MAX_NEW_WORDS
        and fuzz.partial_ratio(" ".join(heard_words), " ".join(said_words)) >= ECHO_PARTIAL_RATIO
    ):
        return Meaning.ECHO
    if " ".join(heard_words) in BACKCHANNEL_PHRASES or all(word in BACKCHANNELS for word in heard_words):
        return Meaning.BACKCHANNEL
    content = [word for word in new if word not in FUNCTION_WORDS and word not in BACKCHANNELS]
    return Meaning.SPEECH if len(content) >= 2 else Meaning.UNSURE


BACKCHANNEL_PHRASES = frozenset({"got it", "i see", "thank you", "uh huh", "mm hmm", "all right"})
