"""Replies sized for the ear (voice.cutoffs): the length cap and the repetition guard, alone and in the pipeline.

The pipeline tests stream text a word at a time through the real filters and sentence splitter, as a model
would write it, with speech off: what is said is the SentenceWritten events.
"""

import pytest

from voice import cutoffs
from voice.cutoffs import LENGTH, REPETITION, ReplyCutoff, Verdict, ends_sentence
from voice.pipeline import GivenText, ReplyPipeline, SentenceWritten, TextCut, TextDelta
from voice.responders.readaloud import ReadAloudResponder
from voice.scheduling import CHARS_PER_SECOND
from voice.tests.responders import LongResponder

SAY = Verdict(True)


async def run(responder, query=""):
    """What the pipeline showed, the segments it said, and its cut (None: none)."""
    events = [event async for event in ReplyPipeline(responder, None).run(query)]
    shown = "".join(event.text for event in events if isinstance(event, TextDelta))
    said = [event.sentence for event in events if isinstance(event, SentenceWritten)]
    cuts = [event for event in events if isinstance(event, TextCut)]
    assert len(cuts) <= 1
    return shown, said, cuts[0] if cuts else None


async def read_back(text):
    """``text`` as a model's reply: what was kept (the displayed text up to the cut), and why it was cut."""
    shown, said, cut = await run(ReadAloudResponder(), text)
    if cut is None:
        return shown, ""
    assert cut.display_end == said[-1].end  # the kept text ends with the last segment said
    return shown[: cut.display_end], cut.reason


# --- The length cap, segment by segment ---------------------------------------------------
def judged(cutoff, *segments, ends_line=False):
    return [cutoff.judge(segment, ends_line=ends_line) for segment in segments]


def test_under_the_cap_everything_is_said():
    assert judged(ReplyCutoff(30, chars_per_second=1), "Short one.", "Another one here.") == [SAY, SAY]


def test_past_the_cap_after_a_sentence_end_the_next_segment_is_dropped():
    cutoff = ReplyCutoff(30, chars_per_second=1)
    assert judged(cutoff, "Short one.", "Another one here.", "Third one.") == [SAY, SAY, Verdict(False, LENGTH)]


def test_past_the_cap_mid_sentence_the_sentence_is_finished_first():
    cutoff = ReplyCutoff(30, chars_per_second=1)
    verdicts = judged(cutoff, "A first clause,", "and a second part,", "still going", "to its end.")
    assert verdicts == [SAY, SAY, SAY, Verdict(True, LENGTH)]


def test_a_line_end_is_as_good_as_a_full_stop():
    """A list item or heading ends without punctuation: the reply may end after it."""
    assert judged(ReplyCutoff(10, chars_per_second=1), "Apples", "Pears", ends_line=True) == [
        SAY,
        Verdict(False, LENGTH),
    ]
    assert judged(ReplyCutoff(10, chars_per_second=1), "Apples", "Pears") == [SAY, SAY]  # mid-sentence: go on


def test_a_reply_is_never_cut_to_nothing():
    cutoff = ReplyCutoff(5, chars_per_second=1)
    assert judged(cutoff, "A sentence longer than five.") == [Verdict(True, LENGTH)]
    cutoff = ReplyCutoff(5, chars_per_second=1)
    assert judged(cutoff, "A clause longer than five,", "then its end.") == [SAY, Verdict(True, LENGTH)]


def test_zero_seconds_is_no_cap():
    texts = [f"Sentence {n} of {' '.join(['many'] * (n % 5))} words, number {n}." for n in range(200)]
    assert set(judged(ReplyCutoff(0), *texts)) == {SAY}


def test_the_cap_is_counted_in_seconds_of_speech():
    cutoff = ReplyCutoff(2)  # 28 characters at 14 a second
    assert CHARS_PER_SECOND == 14
    assert judged(cutoff, "x" * 20 + ".", "y" * 7 + ".") == [SAY, Verdict(False, LENGTH)]


@pytest.mark.parametrize(
    ("text", "ends"),
    [
        ("Yes.", True),
        ("Really?!", True),
        ("It was…", True),
        ('He said "yes."', True),
        ("(As above.)", True),
        ("“Quoted.”", True),
        ("Fine. ", True),
        ("a first clause,", False),
        ("no end at all", False),
        ("the list:", False),
    ],
)
def test_a_sentence_ends_with_its_stop_and_closing_quotes_or_brackets(text, ends):
    assert ends_sentence(text) is ends


# --- The repetition guard, alone ---------------------------------------------------------------
def test_words_that_repeat_a_short_block_three_times_are_a_loop():
    cutoff = ReplyCutoff(25)
    assert cutoff.stream("A port is a port is a ") is False
    assert cutoff.stream("port is ") is True


def test_a_word_split_across_pieces_counts_once():
    cutoff = ReplyCutoff(25)
    for piece in ["A po", "rt is a p", "ort is a po", "rt", " is"]:  # "port" is one word, not "po" and "rt"
        assert cutoff.stream(piece) is False
    assert cutoff.stream("", final=True) is True  # the last "is" is over: "a port is" a third time


def test_a_whole_sentence_said_again_is_a_loop():
    cutoff = ReplyCutoff(25)
    assert judged(cutoff, "The capital of France is Paris.", "The capital of France is Paris.") == [
        SAY,
        Verdict(False, REPETITION),
    ]
    # A short one may come twice ("No. No."), not three times.
    cutoff = ReplyCutoff(25)
    assert judged(cutoff, "I'm sorry.", "I'm sorry.", "I'm sorry.") == [SAY, SAY, Verdict(False, REPETITION)]


def test_only_whole_sentences_count_not_pieces_or_openings():
    cutoff = ReplyCutoff(25)
    segments = [
        "You can take the train from the city centre,",
        "which takes about an hour.",
        "Or you can take the bus from the airport,",
        "which takes about an hour.",
        "You can take the train from the city centre,",
        "and then a taxi.",
    ]
    assert set(judged(cutoff, *segments)) == {SAY}


def test_the_first_segment_is_said_even_when_it_shows_the_loop():
    cutoff = ReplyCutoff(25)
    cutoff.stream("a port is a port is a port is a port ")
    assert cutoff.judge("A port is a port is a port is a port") == Verdict(True, REPETITION)


def test_a_loop_the_stream_shows_ends_the_reply_before_the_next_segment():
    cutoff = ReplyCutoff(25)
    assert cutoff.judge("A port is a number.") == SAY
    cutoff.stream("A port is a number. A port is a port is a port is a ")
    assert cutoff.judge("A port is a port is a port is a") == Verdict(False, REPETITION)


# --- In the pipeline -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("A port is a port is a port is a port is a port is a port is a port.", "A port is a port is a port is"),
        ("I'm sorry. I'm sorry. I'm sorry. I'm sorry. I'm sorry.", "I'm sorry. I'm sorry."),
        (
            "The capital of France is Paris. The capital of France is Paris. The capital of France is Paris.",
            "The capital of France is Paris.",
        ),
        (
            "A port is a number that identifies a program. A port is a port is a port is a port is a port.",
            "A port is a number that identifies a program.",
        ),
        (
            "A cat is an animal. A dog is a pet. A cat is an animal. A dog is a pet.",
            "A cat is an animal. A dog is a pet.",
        ),
        (
            "Paris is the capital and most populous city of France, with an estimated population of two million "
            "residents. " * 3,
            "Paris is the capital and most populous city of France, with an estimated population of two million "
            "residents. Paris is the capital",  # a long sentence's second copy is caught a few words in
        ),
        # Replies SmolLM2-135M wrote. A loop found mid-sentence ends with its sentence when that comes soon ...
        (
            "They're also incredibly intelligent and can be trained to perform a wide range of tasks, from obedience "
            "to therapy. They're also incredibly loyal and can be trained to perform a wide range of tasks, from "
            "obedience to therapy. They're also incredibly loyal and can be trained to perform a wide range",
            "They're also incredibly intelligent and can be trained to perform a wide range of tasks, from obedience "
            "to therapy. They're also incredibly loyal and can be trained to perform a wide range of tasks, from "
            "obedience to therapy.",
        ),
        # ... and a loop that never ends its sentence, at once.
        (
            "La femme en France, la femme en France, la femme en France, la femme en France, la femme en France, la",
            "La femme en France, la femme en France,",
        ),
        (
            "- Check the oil\n- Check the tyres\n- Check the oil\n- Check the oil\n",
            "- Check the oil\n- Check the tyres\n- Check the oil",  # a short line may come twice
        ),
    ],
)
async def test_a_looping_reply_ends_before_the_segment_that_shows_the_loop(reply, kept):
    assert await read_back(reply) == (kept, REPETITION)


# Replies as models write them, repeating words and phrases the way prose does: never a loop.
PROSE = [
    "Paris is one of the most visited cities in the world. It is one of the oldest cities in Europe, and one of "
    "the most beautiful. The Eiffel Tower, the Louvre and Notre-Dame are three of its most famous sights.",
    "Here are some tips for better sleep:\n\n- Go to bed at the same time every night.\n- Keep your bedroom cool "
    "and dark.\n- Avoid screens for an hour before bed.\n- Avoid caffeine after lunch.\n- Get some sunlight in the "
    "morning.\n",
    "To make a cup of tea:\n\n1. Boil the water.\n2. Put the tea bag in the cup.\n3. Pour the water over the tea "
    "bag.\n4. Wait for three to five minutes.\n5. Take the tea bag out of the cup.\n",
    "Very, very good question! The answer is yes. Yes, you can. It really, really depends on the weather, though.",
    "The store is open from 9 am to 5 pm on Monday, from 9 am to 5 pm on Tuesday, and from 10 am to 4 pm on Saturday.",
    "Happy birthday to you, happy birthday to you, happy birthday dear Anna, happy birthday to you!",
    "| Day | Opens | Closes |\n| --- | --- | --- |\n| Monday | 9 am | 5 pm |\n| Tuesday | 9 am | 5 pm |\n"
    "| Wednesday | 9 am | 5 pm |\n",
    "The more you practice, the better you get. The more you read, the more you learn. The more you listen, the "
    "more you understand.",
    "One of the best ways to learn a language is to speak it every day. Another one of the best ways is to read "
    "books in that language. You can also watch films with subtitles.",
    "No, no, no. That is not how it works. Let me explain it again. The sun does not go around the earth; the "
    "earth goes around the sun.",
    "Python is a programming language. Python is easy to learn. Python is used for web development, data "
    "science and automation.",
    "Step 1: Open the app. Step 2: Tap Settings. Step 3: Tap Account. Step 4: Tap Sign out.",
    "Yes. No. Yes. No. Maybe.",
    "A port is a number that identifies a program on a computer. When a program listens on a port, other programs "
    "can connect to it. For example, web servers usually listen on port 80 or port 443.",
]


@pytest.mark.parametrize("reply", PROSE, ids=lambda reply: reply[:30])
async def test_ordinary_prose_is_said_whole(reply, settings):
    settings.VOICE_REPLY_MAX_SECONDS = 0  # the guard alone
    assert await read_back(reply) == (reply, "")


async def test_a_long_reply_ends_at_the_last_sentence_begun_before_the_cap(settings):
    settings.VOICE_REPLY_MAX_SECONDS = 25
    shown, said, cut = await run(LongResponder())
    assert cut.reason == LENGTH and cut.display_end == said[-1].end
    kept = shown[: cut.display_end]
    assert kept.endswith(".") and LongResponder.text.startswith(kept)
    spoken = sum(len(sentence.text) for sentence in said)
    assert 20 * CHARS_PER_SECOND < spoken <= 25 * CHARS_PER_SECOND
    # The model was stopped there (the segment dropped, and the few words read ahead of it), not read to its end,
    # and before the pipeline said the reply was cut.
    assert LongResponder.closed_early and LongResponder.given < len(kept.split()) + 20 < LongResponder.words()
    pipeline = ReplyPipeline(LongResponder(), None).run("")
    assert [LongResponder.closed_early async for event in pipeline if isinstance(event, TextCut)] == [True]


async def test_a_sentence_begun_before_the_cap_is_finished(settings):
    settings.VOICE_REPLY_MAX_SECONDS = 3  # 42 characters
    reply = (
        "This first sentence is rather long, and it goes on with many more words, well past the cap, in pieces, "
        "before it ends. Then more."
    )
    assert await read_back(reply) == (reply[: reply.index(" Then")], LENGTH)


async def test_a_reply_that_ends_on_its_own_at_the_cap_is_not_cut(settings):
    settings.VOICE_REPLY_MAX_SECONDS = 2
    reply = "This first clause is long enough, and this sentence goes on past the cap to its very end."
    assert await read_back(reply) == (reply, "")


async def test_text_given_to_the_speech_api_is_said_whole(settings):
    settings.VOICE_REPLY_MAX_SECONDS = 1
    text = LongResponder.text + " " + "A port is a port " * 5
    shown, said, cut = await run(GivenText(), text)
    assert cut is None and shown == text and said[-1].end >= len(text.rstrip())


def test_the_reasons_are_the_models_choices():
    from voice.models import Message

    assert set(Message.Cut.values) == set(cutoffs.REASONS)
