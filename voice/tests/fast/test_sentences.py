from voice.filters.speech import Piece
from voice.sentences import SentenceSplitter


class Splitter(SentenceSplitter):
    """Fed raw text, each delta said as written (as a custom identity filter would hand it over)."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.shown = 0

    def feed(self, text: str):
        start, self.shown = self.shown, self.shown + len(text)
        return super().feed([Piece(text, start, self.shown)] if text else [])


def split_all(text: str, step: int | None = None, **options) -> list[str]:
    splitter = Splitter(**options)
    step = step or len(text)
    found = []
    for i in range(0, len(text), step):
        found += splitter.feed(text[i : i + step])
    found += splitter.flush()
    for sentence in found:
        assert text[sentence.start : sentence.end] == sentence.text
    return [s.text for s in found]


def test_sentences_are_found_whatever_the_delta_size():
    text = 'Hello there. Is it "working?" Yes!\nA new line without a stop\nAnd the end'
    expected = ["Hello there.", 'Is it "working?"', "Yes!", "A new line without a stop", "And the end"]
    for step in (1, 2, 5, 7, None):
        assert split_all(text, step) == expected


def test_a_sentence_waits_until_it_is_certainly_over():
    splitter = Splitter()
    assert splitter.feed("It costs 3.") == []  # could be 3.50
    assert [s.text for s in splitter.feed("50 dollars. Then")] == ["It costs 3.50 dollars."]
    assert [s.text for s in splitter.flush()] == ["Then"]


def test_abbreviations_and_initials_do_not_end_sentences():
    text = "Dr. Smith met J. R. Tolkien, e.g. at 5 p.m. on Main St. yesterday. Then he left."
    assert split_all(text) == ["Dr. Smith met J. R. Tolkien, e.g. at 5 p.m. on Main St. yesterday.", "Then he left."]


def test_long_runs_without_punctuation_are_cut_at_a_word_or_clause():
    text = ("word " * 50 + "and, " + "more " * 60).strip()
    parts = split_all(text)
    assert len(parts) > 1
    assert all(len(part) <= 240 for part in parts)
    assert " ".join(parts).split() == text.split()


def test_blank_input_gives_nothing():
    assert split_all("   \n\n  ") == []


def test_the_first_segment_may_end_at_a_clause():
    splitter = Splitter(first_clause_chars=24)
    text = "This is sentence number one of the reply, and it has words. Then, a second one, whole."
    found = []
    for i in range(0, len(text), 3):
        found += splitter.feed(text[i : i + 3])
    found += splitter.flush()
    assert [s.text for s in found] == [
        "This is sentence number one of the reply,",
        "and it has words.",
        "Then, a second one, whole.",
    ]
    assert all(text[s.start : s.end] == s.text for s in found)


def test_short_first_clauses_and_sentences_are_not_cut():
    splitter = Splitter(first_clause_chars=24)
    assert [s.text for s in splitter.feed("Well, yes. Of course, certainly, as you say. ")] == [
        "Well, yes.",
        "Of course, certainly, as you say.",
    ]


def test_decimals_versions_urls_and_ellipses_do_not_end_sentences():
    text = "It costs 3.50 now. Update to v2.1.0 today. Well... I think so. See https://example.com/a.b?c=1. Done."
    expected = [
        "It costs 3.50 now.",
        "Update to v2.1.0 today.",
        "Well... I think so.",
        "See https://example.com/a.b?c=1.",
        "Done.",
    ]
    for step in (1, 2, 3, None):
        assert split_all(text, step) == expected


def test_initials_and_titles_do_not_end_sentences():
    text = "J. R. R. Tolkien met Prof. Lewis. They talked."
    assert split_all(text, 1) == ["J. R. R. Tolkien met Prof. Lewis.", "They talked."]


def test_etc_ends_a_sentence_only_before_a_capital():
    assert split_all("Apples, pears, etc. and more. Then tea, etc. Next one.") == [
        "Apples, pears, etc. and more.",
        "Then tea, etc.",
        "Next one.",
    ]
    splitter = Splitter()
    assert splitter.feed("Then tea, etc. ") == []  # it depends on the next word
    assert [s.text for s in splitter.feed("N")] == ["Then tea, etc."]


def test_a_span_covers_the_silent_markup_around_its_sentence():
    # "**Hi.** Bye." said as "Hi. Bye.": the first sentence's span covers both "**".
    splitter = SentenceSplitter()
    pieces = [Piece("", 0, 2), Piece("Hi.", 2, 5), Piece("", 5, 7), Piece(" ", 7, 8), Piece("Bye.", 8, 12)]
    found = splitter.feed(pieces) + splitter.flush()
    assert [(s.text, s.start, s.end) for s in found] == [("Hi.", 0, 7), ("Bye.", 8, 12)]


def test_a_sentence_said_otherwise_spans_what_it_stands_for():
    # "See Dr. Smith. Bye." with "Dr. Smith." said as one piece, "Doctor Smith."
    splitter = SentenceSplitter()
    found = splitter.feed([Piece("See ", 0, 4), Piece("Doctor Smith.", 4, 14), Piece(" Bye.", 14, 19)])
    found += splitter.flush()
    assert [(s.text, s.start, s.end) for s in found] == [("See Doctor Smith.", 0, 14), ("Bye.", 15, 19)]


def test_gaps_left_by_unsaid_markup_are_tidied():
    splitter = SentenceSplitter()
    found = splitter.feed([Piece("Great job ", 0, 10), Piece("", 10, 12), Piece(".", 12, 12)]) + splitter.flush()
    assert [(s.text, s.start, s.end) for s in found] == [("Great job.", 0, 12)]


def test_an_overlong_sentence_is_cut_in_the_same_place_however_it_arrives():
    text = "word " * 60 + "end. Next one."
    assert split_all(text, 1) == split_all(text) == split_all(text, 7)
    assert len(split_all(text)) == 3


# --- Later segments cut short (segment_max_chars) ------------------------------------------
def feed_words(text: str, **options) -> list[tuple[str, str]]:
    """(segment, the text fed so far when it came out), the text fed a word at a time."""
    splitter, fed, found = Splitter(**options), "", []
    for word in text.split(" "):
        delta = word if not fed else " " + word
        fed += delta
        found += [(s.text, fed) for s in splitter.feed(delta)]
    return found + [(s.text, fed) for s in splitter.flush()]


def test_a_long_later_sentence_is_cut_at_its_last_clause_break_within_the_limit():
    text = "Sure. We walked along the old river path, then the children played with a ball, as the sun was out."
    assert split_all(text, segment_max_chars=60) == [
        "Sure.",
        "We walked along the old river path,",  # not before "with", nor past the limit at "ball,"
        "then the children played with a ball, as the sun was out.",
    ]


def test_a_clause_break_just_past_the_limit_beats_a_cut_inside_a_phrase():
    clause = (
        "The train leaves from the central station at nine in the morning on most days of the week"
        " in the summer months of the year,"
    )
    text = f"Sure. {clause} and it is quick."
    for step in (1, 3, 7, None):  # a cut within the limit is not made before the clause break arrives
        assert split_all(text, step, segment_max_chars=100) == ["Sure.", clause, "and it is quick."]
    assert len(clause) == 123


def test_without_a_clause_break_a_long_sentence_is_cut_before_a_word_group():
    text = "Sure. The children played with a ball in the old garden because the sun was out."
    assert split_all(text, segment_max_chars=60) == [
        "Sure.",
        "The children played with a ball in the old garden",  # not "… garden because | the sun"
        "because the sun was out.",
    ]
    # A word that goes with the group word stays with it: "| so that", not "so | that".
    text = "Sure. Keep the receipt in a safe place so that you can return the shoes later."
    assert split_all(text, segment_max_chars=50) == [
        "Sure.",
        "Keep the receipt in a safe place",
        "so that you can return the shoes later.",
    ]


def test_failing_a_word_group_a_cut_comes_before_a_phrase_and_never_after_a_word_that_binds_to_the_next():
    text = "Sure. Green plants use sunlight to make food from carbon dioxide and water in their leaves."
    assert split_all(text, segment_max_chars=50) == [
        "Sure.",
        "Green plants use sunlight to make food",  # not "… from carbon | dioxide"
        "from carbon dioxide and water in their leaves.",
    ]
    text = "Sure. Some other organisms use sunlight to synthesize their foods."
    assert split_all(text, segment_max_chars=40) == [
        "Sure.",
        "Some other organisms use sunlight",  # not "… sunlight to | synthesize"
        "to synthesize their foods.",
    ]


def test_a_cut_is_never_inside_a_word():
    text = "Fine. " + " ".join(["extraordinarily", "long", "words", "keep", "coming", "here"] * 12) + "."
    parts = split_all(text, segment_max_chars=50)
    assert len(parts) > 5
    assert all(len(part) <= 50 for part in parts)
    assert " ".join(parts).split() == text.split()  # a word cut in two would show here


def test_a_cut_leaves_no_tiny_fragment():
    # Neither "Yes," alone nor "he said." alone: both parts of a cut have some length.
    text = "Sure. Yes, the old lighthouse keeper walked slowly along the rocky shore every evening, he said."
    parts = split_all(text, segment_max_chars=40)
    assert parts == [
        "Sure.",
        "Yes, the old lighthouse keeper walked",
        "slowly along the rocky shore every",
        "evening, he said.",
    ]
    assert all(len(part) >= 16 for part in parts[1:])


def test_a_cut_is_made_as_soon_as_it_is_certain_and_wherever_the_deltas_end():
    text = (
        "Sure. We walked along the old river path, then the children played with a ball because the sun was out. "
        "It is the process by which green plants and some other organisms make food. "
        "The old lighthouse keeper walked slowly along the rocky shore every evening, he said, until it got dark."
    )
    at_once = split_all(text, segment_max_chars=40)
    assert len(at_once) > 8
    for step in (1, 2, 3, 5, 7, 11):
        assert split_all(text, step, segment_max_chars=40) == at_once
    by_word = feed_words(text, segment_max_chars=40)
    assert [segment for segment, _fed in by_word] == at_once
    # The first cut comes out long before its sentence ends.
    segment, fed = by_word[1]
    assert segment == "We walked along the old river path," and fed.endswith("children played")


def test_cut_segments_span_what_they_stand_for():
    # "Okay. It costs $19.99 which is a fair price for good shoes.", the price said in words:
    # never cut inside what stands for "$19.99", though "and" is in it.
    pieces = [
        Piece("Okay. It costs ", 0, 15),
        Piece("nineteen dollars and ninety-nine cents", 15, 21),
        Piece(" which is a fair price for good shoes.", 21, 59),
    ]
    for limit in (40, 60):
        splitter = SentenceSplitter(segment_max_chars=limit)
        found = splitter.feed(pieces) + splitter.flush()
        assert [(s.text, s.start, s.end) for s in found] == [
            ("Okay.", 0, 5),
            ("It costs nineteen dollars and ninety-nine cents", 6, 21),
            ("which is a fair price for good shoes.", 22, 59),
        ]


def test_no_cut_below_the_limit_or_when_it_is_zero():
    text = "Sure. We walked along the old river path, then the children played with a ball because the sun was out."
    whole = ["Sure.", text[6:]]
    assert split_all(text, segment_max_chars=0) == whole
    assert split_all(text, segment_max_chars=len(text) - 6) == whole


def test_the_first_segment_is_cut_only_past_its_own_limit_and_the_first_clause_rule_holds():
    first = "The old lighthouse keeper walked slowly along the rocky shore every evening until it got dark."
    assert split_all(first + " Yes.", segment_max_chars=30)[0] == first
    pieces = split_all(first + " Yes.", 1, segment_max_chars=30, first_segment_max_chars=40)
    assert 16 <= len(pieces[0]) <= 50 and pieces[0] != first, pieces
    assert " ".join(pieces[:-1]) == first and pieces[-1] == "Yes."
    text = "This is sentence number one of the reply, and it has words. Then, a second one, whole."
    assert split_all(text, 3, first_clause_chars=24, segment_max_chars=30) == [
        "This is sentence number one of the reply,",
        "and it has words.",
        "Then, a second one, whole.",
    ]


def test_a_blank_line_before_the_reply_does_not_lose_the_first_clause():
    text = "\n\nThis is sentence number one of the reply, and it has words. More."
    assert split_all(text, 1, first_clause_chars=24) == [
        "This is sentence number one of the reply,",
        "and it has words.",
        "More.",
    ]
