"""New text for load benchmarks: ordinary English sentences, no segment said twice.

The segment cache answers any segment said before, so a load benchmark whose
questions share a clause measures the cache, not synthesis. ``Talk`` composes
sentences from word lists with a random generator seeded by a per-run nonce,
cuts each text into segments exactly as the reply pipeline does
(``segments``), and never hands out a text with a segment it has handed out
before. Later segments are short (``VOICE_SEGMENT_MAX_CHARS``, a few words),
so the templates put a name, a town or a number in every few words: short
stretches of a small vocabulary ("tomorrow morning.") would repeat, and the
cache would answer them.

Shape matters too: the first segment ends at the first clause break past
``VOICE_FIRST_CLAUSE_CHARS`` or at the end of the first sentence, and its
length sets time to first audio. So there are no commas: a comma would cut a
first segment shorter (and faster) than an ordinary first sentence. Every
spoken sentence is 40 to 90 characters, like an ordinary reply's first one.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable

SPOKEN_CHARS = (40, 90)  # the length of a spoken sentence
NO_COMMA_BEFORE = 30  # a first segment shorter than this would flatter time to first audio
ATTEMPTS = 1000

FIRST_NAMES = """Priya Omar Hannah Diego Mei Tomasz Grace Kwame Sofia Lars Aisha Mateo Ingrid Ravi Chloe Yusuf Elena
Jonas Nadia Felix Amara Hugo Leila Oscar Freya Ibrahim Maya Stefan Zara Pablo Ruth Kenji Alma Victor Esther Malik Iris
Bruno Lucia Emeka Nora Tariq Clara Henrik Rosa Sami Greta Idris Alice Marco Vera Theo Anya Rafael Lena Caleb Dalia
Arthur Noor Simon""".split()
SURNAMES = """Shah Lopez Novak Okafor Berg Tanaka Murphy Rossi Kowalski Haddad Jensen Costa Fischer Nguyen Clarke Moreau
Singh Petrov Byrne Silva Weber Kim Duarte Larsen Mensah Romano Dubois Park Varga Quinn Ahmed Holm Ortiz Bauer Reyes
Walsh Ito Santos Lindqvist Adeyemi Marsh Keller Fontaine Yilmaz Hughes Pereira Sato Brennan Abara Koch""".split()
TOWNS = """Leeds Lisbon Oslo Cork Lyon Utrecht Bergen Porto Galway Krakow Seville Dundee Ghent Bristol Turin Malmo Graz
Bilbao Aarhus Brno Nantes Bologna Tampere Cardiff Leipzig Verona Basel Split Riga Tartu Bruges Exeter Granada Gdansk
Lille Salzburg Zagreb Durham Valencia Inverness Bremen Nice Ljubljana York Toulouse Kaunas Padua Odense Coimbra
Bath""".split()
COLOURS = """green yellow purple orange crimson silver golden white black grey pink brown scarlet violet turquoise navy
ivory amber olive teal""".split()
MATERIALS = """wooden velvet marble copper woollen leather glass bamboo plastic brass linen cotton iron clay wicker
silk steel paper oak rubber""".split()
THINGS = """teacups armchairs suitcases ladders lamps bicycles mirrors bookshelves umbrellas teapots wheelbarrows
toolboxes clocks cushions kettles guitars blankets tents radios baskets candles benches telescopes typewriters drums
globes vases buckets jugs curtains boxes hats scarves gloves bowls plates spoons trays stools rugs""".split()
VERBS = [  # (base, past)
    ("buy", "bought"),
    ("sell", "sold"),
    ("paint", "painted"),
    ("fix", "fixed"),
    ("find", "found"),
    ("clean", "cleaned"),
    ("borrow", "borrowed"),
    ("carry", "carried"),
    ("repair", "repaired"),
    ("order", "ordered"),
    ("wrap", "wrapped"),
    ("polish", "polished"),
    ("collect", "collected"),
    ("deliver", "delivered"),
    ("count", "counted"),
    ("stack", "stacked"),
]

# One-sentence questions a small model can answer.
TASKS = [
    "keep fresh basil from wilting",
    "clean a cast iron pan",
    "fold a fitted sheet",
    "store winter coats",
    "learn a few words of Italian",
    "remove rust from garden tools",
    "water tomato plants",
    "pack a small suitcase",
    "fix a squeaky door",
    "teach a puppy to sit",
    "keep a kitchen knife sharp",
    "start running again",
    "make a cold room feel warmer",
    "save money on groceries",
    "remember the names of new people",
    "plan a birthday picnic",
    "grow mint on a balcony",
    "keep bread from going stale",
    "stop a tap from dripping",
    "cook rice in an ordinary pot",
    "wash a wool jumper",
    "keep a cat off the table",
]
CONDITIONS = [
    "in a small flat",
    "before a long trip",
    "on a tight budget",
    "without special tools",
    "with young children around",
    "during a cold winter",
    "in very hot weather",
    "after a long week",
    "for the first time",
    "in less than an hour",
]
WHAT = [
    "old houses",
    "cats",
    "ripe bananas",
    "car batteries",
    "wooden floors",
    "houseplants",
    "bicycle tyres",
    "leather shoes",
    "copper pots",
    "sourdough starters",
    "paper books",
    "garden hoses",
]
HAPPENINGS = [
    "seem to change in winter",
    "get worse in damp weather",
    "wear out faster than expected",
    "need more care in summer",
    "change colour over time",
    "react badly to the cold",
    "make strange noises sometimes",
    "last longer when kept cool",
    "smell different after rain",
]
SUGGESTIONS = ["board game", "book", "houseplant", "hobby", "weekend trip", "breakfast", "film", "instrument", "sport"]
PEOPLE = [
    "a friend",
    "my father",
    "a teenager",
    "my neighbour",
    "a busy nurse",
    "an old colleague",
    "my grandmother",
    "a new student",
]
LIKINGS = [
    "likes puzzles",
    "enjoys the outdoors",
    "hates noise",
    "loves history",
    "has little free time",
    "lives in a big city",
    "is learning to cook",
    "travels a lot",
    "wants to relax more",
    "likes bright colours",
]


def segments(text: str) -> list[str]:
    """What the reply pipeline synthesizes for ``text``, segment by segment (as ``voice.pipeline`` cuts it)."""
    from voice.filters.speech import SpeechText
    from voice.pipeline import sentence_splitter

    splitter = sentence_splitter()
    speech = SpeechText()
    found = splitter.feed(speech.feed(text)) + splitter.feed(speech.flush()) + splitter.flush()
    return [sentence.text for sentence in found]


class Talk:
    """Texts with no segment said before in this run, from a generator seeded by ``nonce``."""

    def __init__(self, nonce: str | None = None, split: Callable[[str], list[str]] = segments) -> None:
        self.nonce = nonce or secrets.token_hex(4)
        self.rng = random.Random(self.nonce)
        self.split = split
        self.said: set[str] = set()  # every segment (and every question) handed out

    # --- Words: a name, a town or a number every few words, so that every segment is new ------
    def _name(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(SURNAMES)}"

    def _town(self) -> str:
        return self.rng.choice(TOWNS)

    def _things(self) -> str:
        # The number is said as words ("forty-seven").
        r = self.rng
        return r.choice(
            [
                f"{r.randint(3, 99)} {r.choice(COLOURS)} {r.choice(MATERIALS)} {r.choice(THINGS)}",
                f"{r.randint(3, 99)} {r.choice(COLOURS)} {r.choice(THINGS)}",
                f"{r.randint(3, 99)} {r.choice(MATERIALS)} {r.choice(THINGS)}",
            ]
        )

    def _did(self) -> str:
        return self.rng.choice(VERBS)[1]

    def _do(self) -> str:
        return self.rng.choice(VERBS)[0]

    # --- Sentences ------------------------------------------------------------------
    def _statement(self) -> str:
        return self.rng.choice(
            [
                f"{self._name()} {self._did()} {self._things()} for {self._name()}.",
                f"{self._name()} drove {self._things()} from {self._town()} to {self._town()}.",
                f"{self._name()} and {self._name()} {self._did()} {self._things()} in {self._town()}.",
            ]
        )

    def _question(self) -> str:
        return self.rng.choice(
            [
                f"Did {self._name()} give {self._name()} the {self._things()} from {self._town()}?",
                f"Could {self._name()} send {self._things()} to {self._name()} in {self._town()}?",
                f"Why did {self._name()} {self._do()} {self._things()} for {self._name()}?",
            ]
        )

    def _request(self) -> str:
        return self.rng.choice(
            [
                f"Please ask {self._name()} to {self._do()} {self._things()} for {self._name()}.",
                f"Tell {self._name()} that {self._name()} {self._did()} {self._things()} in {self._town()}.",
                f"Remind {self._name()} to bring {self._things()} to {self._name()} in {self._town()}.",
            ]
        )

    def _new(self, compose: Callable[[], list[str]], spoken: bool = True) -> str:
        """A text of ``compose``'s sentences, of ordinary shape, none of whose segments was handed out before."""
        low, high = SPOKEN_CHARS
        for _ in range(ATTEMPTS):
            sentences = compose()
            text = " ".join(sentences)
            if spoken and not (
                all(low <= len(s) <= high for s in sentences) and "," not in sentences[0][:NO_COMMA_BEFORE]
            ):
                continue
            parts = self.split(text) if spoken else [text]
            if not self.said.intersection(parts) and len(set(parts)) == len(parts):
                self.said.update(parts)
                return text
        raise RuntimeError("Talk ran out of new text: add words to bench/talk.py")

    def read_aloud(self) -> str:
        """Three sentences to be spoken back (the read-aloud responder): a three-sentence reply's worth."""
        return self._new(lambda: [self._statement(), self._question(), self._request()])

    def ask(self) -> str:
        """One new question for a language model to answer (not spoken: the model's reply is)."""
        r = self.rng

        def compose() -> list[str]:
            question = r.choice(
                [
                    f"What is a good way to {r.choice(TASKS)} {r.choice(CONDITIONS)}?",
                    f"How long does it take to {r.choice(TASKS)} {r.choice(CONDITIONS)}?",
                    f"Why do {r.choice(WHAT)} {r.choice(HAPPENINGS)}?",
                    f"Which {r.choice(SUGGESTIONS)} would you suggest for {r.choice(PEOPLE)} who {r.choice(LIKINGS)}?",
                ]
            )
            return [question]

        return self._new(compose, spoken=False)
