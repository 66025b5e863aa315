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


def split_all(text: str, step: int | None = None) -> list[str]:
    splitter = Splitter()
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
