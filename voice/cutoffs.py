"""When a reply has said enough: a spoken-length cap and a repetition guard.

A listener cannot skim. Small models answer a one-sentence question at length
(SmolLM2-135M ran most replies to its 200-token cap, about 45 s of speech) and
sometimes loop ("A port is a port is a port …") until that cap, holding a
model slot and the cores all the while. The reply pipeline asks a
``ReplyCutoff`` about the reply's speech as it is written, and ends the reply
cleanly when either rule says so. Both are generic, for every responder; the
pipeline then stops reading from the responder (which stops the model), and the
reply is stored complete with exactly what was said.

- **Length** (``VOICE_REPLY_MAX_SECONDS``, estimated from the speech text at
  ``voice.scheduling.CHARS_PER_SECOND``). A segment that would take the spoken
  total past the cap is dropped when the segments already said end a sentence;
  when they end mid-sentence (a first clause, a piece of a long sentence), the
  reply goes on to the end of that sentence and ends there. A reply is never
  cut to nothing: its first segment is always said.
- **Repetition.** A reply loops when its words repeat themselves back to
  back: a block of one to three words three times ("a port is a port is a
  port is"), or a longer block (a phrase, a sentence or two, up to MAX_PERIOD
  words) again word for word for MIN_RUN words and its whole length, caught
  at most MAX_RUN words into the copy; or when a whole sentence is one said
  before, anywhere in the reply (one of four words or more the second time, a
  shorter one the third: "I'm sorry. I'm sorry. I'm sorry."). The words are
  watched as they stream, so a loop is caught before the segment that holds
  it is said, and inside the reply's first sentence
  too (which may run to 240 characters before it becomes a segment). The
  segment that shows the loop is not said, unless it is the reply's first,
  and the reply ends. Not inside a sentence, though, when that can be helped:
  a loop found mid-sentence is said to the sentence's end when its first copy
  shows that end comes within LOOP_GRACE_WORDS.

Ordinary prose repeats phrases ("one of the … one of the"), the opening of a
sentence, short words ("very, very"), and lines of data that differ in a word
or two (opening hours, a table's rows), but not a short block three times
back to back, a long one whole, or a whole sentence: the thresholds leave it
alone (voice/tests/fast/test_cutoffs.py holds the replies they were tried on).
On 120 replies of SmolLM2-135M to 20 everyday questions (temperature 0.3),
the guard ended 7, each a true loop, all but one (a loop in the reply's first
sentence) at a sentence's or a list item's end.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .scheduling import CHARS_PER_SECOND

# Why a reply was ended early (stored in Message.cut, sent to the page).
LENGTH = "length"
REPETITION = "repetition"
REASONS = (LENGTH, REPETITION)

# A sentence's end: . ! ? … then closing quotes or brackets.
_SENTENCE_END = re.compile(r"""[.!?…]["'”’)\]]*$""")
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_TOKEN = re.compile(r"(\S+)(\s*)")  # a word as written (its punctuation too), and the white space after it

# A loop: words in a row that each repeat the word a block (a period) before them. A block of up to
# SHORT_BLOCK words: SHORT_RUN of them (three copies). A longer one, up to MAX_PERIOD words: a whole
# copy of it, at least MIN_RUN words and at most MAX_RUN (a long block is caught that far into its
# second copy). Lines of data that differ in one word ("on Monday from nine a m to five p m, on
# Tuesday from nine a m to five p m") break the run there, once a copy.
SHORT_BLOCK = 3
SHORT_RUN = 6
MIN_RUN = 8
MAX_RUN = 12
MAX_PERIOD = 40
# A whole sentence of this many words said a second time is a loop; a shorter one, a third time.
LONG_SENTENCE_WORDS = 4
# A loop found mid-sentence: the sentence is finished if its first copy shows it ends within this many words.
LOOP_GRACE_WORDS = 12


def ends_sentence(text: str) -> bool:
    """Does this (spoken) segment end a sentence: . ! ? …, then closing quotes or brackets?"""
    return bool(_SENTENCE_END.search(text.rstrip()))


def words(text: str) -> list[str]:
    """The words of ``text``, lowercased, without punctuation."""
    return [word.replace("’", "'") for word in _WORD.findall(text.lower())]


def loop_threshold(period: int) -> int:
    """Words in a row that must each repeat the word ``period`` words before it for a loop."""
    return SHORT_RUN if period <= SHORT_BLOCK else min(max(period, MIN_RUN), MAX_RUN)


@dataclass(frozen=True)
class Verdict:
    """What to do with a segment: say it or not, then go on or end the reply (``cut``: why)."""

    say: bool
    cut: str = ""


SAY = Verdict(True)


class ReplyCutoff:
    """Follows one reply's speech; says when it has said enough.

    ``stream`` takes the speech text as it is written, and is True once its
    words loop. ``judge`` takes each segment, in order, before it is said.
    """

    def __init__(self, max_seconds: float, chars_per_second: float = CHARS_PER_SECOND) -> None:
        self.max_chars = max_seconds * chars_per_second if max_seconds > 0 else 0  # 0: no cap
        self.said_chars = 0
        self.said_segments = 0
        self.at_sentence_end = True  # the segments said so far end a sentence
        self.finishing = False  # past the cap: the sentence under way is the last
        self.looping = False
        # Where the sentence under way ends, in words of the stream, if a loop tells (its first copy's end).
        self.loop_end: int | None = None
        self._said_words = 0
        self._seen: Counter[str] = Counter()  # whole sentences said, by their words
        self._words: list[str] = []  # every word streamed so far
        self._ends: list[int] = []  # the words that end a sentence or a line, by their index
        self._runs = [0] * (MAX_PERIOD + 1)  # words in a row that repeat the word `period` before them
        self._partial = ""  # a word of the stream not yet ended

    # --- The stream -------------------------------------------------------------
    def stream(self, text: str, final: bool = False) -> bool:
        """More speech text as it is written (``final``: the last of it); True once the reply loops."""
        text = self._partial + text
        cut = len(text) if final else _last_word_end(text)
        self._partial = text[cut:]
        for token in _TOKEN.finditer(text, 0, cut):
            for word in words(token[1]):
                self._add_word(word)
            if ends_sentence(token[1]) or "\n" in token[2]:
                self._ends.append(len(self._words) - 1)
        return self.looping

    def _add_word(self, word: str) -> None:
        history, runs = self._words, self._runs
        history.append(word)
        index = len(history) - 1
        for period in range(1, min(MAX_PERIOD, index) + 1):
            runs[period] = runs[period] + 1 if history[index - period] == word else 0
            if runs[period] >= loop_threshold(period) and not self.looping:
                self.looping = True
                # The copy will end its sentence where the first copy did, a period later.
                end = next((end for end in self._ends if end >= index - period), None)
                self.loop_end = None if end is None else end + period + 1

    # --- Segments ---------------------------------------------------------------
    def judge(self, text: str, ends_line: bool = False) -> Verdict:
        """What to do with the next segment (its spoken text); ``ends_line``: it ends a line of the reply.

        A line's end (a list item, a heading) is as good a place to stop as a sentence's.
        """
        first = self.said_segments == 0
        ends = ends_line or ends_sentence(text)
        said = words(text)
        key = " ".join(said) if self.at_sentence_end and ends else ""  # a whole sentence, or line
        if key and self._seen[key] >= (1 if len(said) >= LONG_SENTENCE_WORDS else 2):
            self.looping = True
        if self.looping:
            verdict = self._repetition(len(said), ends, first)
        else:
            verdict = self._length(len(text), ends, first)
        if verdict.say:
            self.said_segments += 1
            self.said_chars += len(text)
            self._said_words += len(said)
            self.at_sentence_end = ends
            if key:
                self._seen[key] += 1
        return verdict

    def _repetition(self, count: int, ends: bool, first: bool) -> Verdict:
        if first:
            return Verdict(True, REPETITION)  # never cut to nothing
        # A loop found mid-sentence whose first copy says where the sentence ends, soon: finish it, rather
        # than stop inside it. (A short block looping, "la femme en France, la femme en France", may never end.)
        end = self.loop_end
        if self.at_sentence_end or end is None or end - self._said_words > LOOP_GRACE_WORDS:
            return Verdict(False, REPETITION)
        if self._said_words + count > end:
            return Verdict(False, REPETITION)  # the loop went another way: its end did not come there
        return Verdict(True, REPETITION) if ends else SAY

    def _length(self, chars: int, ends: bool, first: bool) -> Verdict:
        if self.finishing:
            return Verdict(True, LENGTH) if ends else SAY
        if not self.max_chars or self.said_chars + chars <= self.max_chars:
            return SAY
        if self.at_sentence_end and not first:
            return Verdict(False, LENGTH)
        # Mid-sentence (or nothing said yet): finish the sentence, then end.
        if ends:
            return Verdict(True, LENGTH)
        self.finishing = True
        return SAY


def _last_word_end(text: str) -> int:
    """Where the last certainly complete word of ``text`` ends: at its last white space (a word may go on)."""
    return max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1
