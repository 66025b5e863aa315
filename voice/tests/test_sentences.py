from voice.sentences import SentenceSplitter


def split_all(text: str, step: int | None = None) -> list[str]:
    splitter = SentenceSplitter()
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
    splitter = SentenceSplitter()
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
    splitter = SentenceSplitter(first_clause_chars=24)
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
    splitter = SentenceSplitter(first_clause_chars=24)
    assert [s.text for s in splitter.feed("Well, yes. Of course, certainly, as you say. ")] == [
        "Well, yes.",
        "Of course, certainly, as you say.",
    ]
