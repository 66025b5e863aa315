"""Speech-ready text: what is said aloud for a reply the model writes in markdown.

The corpus reads as a table: what the user sees → what the voice says (the reply's
sentences joined by spaces). Every case is also fed in deltas of 1, 2 and 3 characters,
as a model streams it, and must be said exactly the same, with the same spans.
models/test_speech_text.py hears it said by the real voice.
"""

import random

import pytest

from voice.filters.speech import DEFAULT_CODE_PHRASE, Piece, SpeechText
from voice.sentences import Sentence, SentenceSplitter
from voice.tests.helpers import said, sentences

CODE = DEFAULT_CODE_PHRASE


def case(shown: str, said: str, name: str):
    return pytest.param(shown, said, id=name)


MARKDOWN = [
    case(
        "Hello **world**, *fine* and __strong__ ~~gone~~ text.", "Hello world, fine and strong gone text.", "emphasis"
    ),
    case("Unclosed **bold", "Unclosed bold.", "unclosed-emphasis"),
    case("# Heading one\nSome text", "Heading one. Some text.", "heading-is-a-sentence"),
    case("## Second heading ##", "Second heading.", "heading-closing-hashes"),
    case("# Plan ## B", "Plan B.", "heading-inner-hashes"),
    case("Title\n=====\nBody", "Title. Body.", "setext-heading"),
    case("#hashtag is not a heading", "#hashtag is not a heading.", "hash-without-space"),
    case("- apples\n- pears!\n* bananas", "apples. pears! bananas.", "bullets-are-sentences"),
    case("1. First step\n2) Second step", "First step. Second step.", "ordered-list"),
    case("- [ ] todo item\n- [x] done item", "todo item. done item.", "task-list"),
    case("  - nested\n    - deeper", "nested. deeper.", "nested-list"),
    case("> A quoted line\n> that goes on", "A quoted line that goes on.", "block-quote"),
    case("> > nested quote", "nested quote.", "nested-quote"),
    case("Use `pip install django` to install it.", "Use pip install django to install it.", "code-span"),
    case("``Use `code` here``", "Use `code` here.", "code-span-with-backtick"),
    case(
        "Text before\n```python\ndef f():\n    return 1\n```\nText after", f"Text before. {CODE} Text after.", "fence"
    ),
    case("~~~\ncode\n~~~\nAfter.", f"{CODE} After.", "tilde-fence"),
    case("```js\nlet x = 1;", CODE, "fence-never-closed"),
    case("Intro:\n\n    indented code\n    more\n\nAfter.", f"Intro: {CODE} After.", "indented-code"),
    case(
        "| Name | Age |\n|------|----:|\n| Ana  | 31  |\n| Bob  | 1   |",
        "Name: Ana, Age: thirty-one. Name: Bob, Age: one.",
        "table-cells-with-headers",
    ),
    case("| a | b |\n| c | d |", "a, b. c, d.", "rows-without-header"),
    case("| Item | Note |\n|---|---|\n| Tea |  |", "Item: Tea.", "empty-cell"),
    case("Above\n***\nBelow\n- - -\nEnd", "Above. Below. End.", "thematic-breaks"),
    case("Hello<br>world and <b>bold</b> and <!-- hidden --> text", "Hello world and bold and text.", "html-tags"),
    case('See [the docs](https://docs.example.com/x "Docs") now.', "See the docs now.", "link-text-only"),
    case("Read [FAQ][faq] and [x][].\n\n[faq]: https://example.com/faq", "Read FAQ and x.", "reference-links"),
    case("An image ![a red fox](fox.png) here.", "An image a red fox here.", "image-description"),
    case("Footnote[^1] and citation [2].\n\n[^1]: The note.", "Footnote and citation. The note.", "footnotes"),
    case(r"\*not emphasis\* &amp; &copy; 2025", "not emphasis and twenty twenty-five.", "escapes-entities"),
    case("This is a long\nsentence that wraps.", "This is a long sentence that wraps.", "soft-line-break"),
    case("Roses are red  \nViolets are blue", "Roses are red. Violets are blue.", "hard-line-break"),
    case("*Note*: the `--force` flag & <kbd>Ctrl</kbd>+<kbd>C</kbd>.", "Note: the --force flag and Ctrl+C.", "mixed"),
    case("Done (ok.) )", "Done (ok.) )", "closing-brackets-after-a-stop"),
]

LINKS = [
    case("Visit https://www.example.com/path?x now.", "Visit example dot com now.", "url-site-name"),
    case("See http://docs.python.org/3/.", "See docs dot python dot org.", "url-subdomain"),
    case("Go to https://my-site.io:8080/a.", "Go to my dash site dot io.", "url-port-dash"),
    case("Go to <https://example.org/a> today", "Go to example dot org today.", "autolink"),
    case("Read example.com/pricing or github.com.", "Read example dot com or github dot com.", "bare-domain"),
    case("Node.js and file.py are not sites.", "Node.js and file.py are not sites.", "not-a-domain"),
    case("Mail ana.lopez@example.org today.", "Mail ana dot lopez at example dot org today.", "email"),
    case("<bob_smith@mail.co.uk>", "bob underscore smith at mail dot co dot uk.", "email-autolink"),
    case("[our site](https://shop.example.com)", "our site.", "link-hides-url"),
]

EMOJI = [
    case("Great job 🎉👍🏽", "Great job.", "emoji-dropped"),
    case("Keycap 1️⃣ and 👨‍👩‍👧 family", "Keycap and family.", "keycap-zwj"),
    case("Done ✅ now", "Done now.", "emoji-mid-sentence"),
]

NUMBERS = [
    case(
        "We had 1,234,567 visitors.",
        "We had one million two hundred thirty-four thousand five hundred sixty-seven visitors.",
        "thousands",
    ),
    case("It was -5 degrees.", "It was minus five degrees.", "negative"),
    case("Pi is about 3.14159.", "Pi is about three point one four one five nine.", "decimal"),
    case("It costs 3.50 and 0.25.", "It costs three point five zero and zero point two five.", "decimal-zeros"),
    case("Code 007.", "Code zero zero seven.", "leading-zeros"),
    case("It costs $19.99.", "It costs nineteen dollars and ninety-nine cents.", "dollars-cents"),
    case("$1,234.50", "one thousand two hundred thirty-four dollars and fifty cents.", "money-thousands"),
    case("€5 or £3.20", "five euros or three pounds and twenty pence.", "euros-pounds"),
    case("$0.99 and $1 and ¥100", "ninety-nine cents and one dollar and one hundred yen.", "money-singular"),
    case("$5 million or $2.5M", "five million dollars or two point five million dollars.", "money-scale"),
    case("Price 5 € here", "Price five euros here.", "currency-after"),
    case("It is 50% or 3.5%.", "It is fifty percent or three point five percent.", "percent"),
    case("5-10% off", "five to ten percent off.", "percent-range"),
    case("She came 3rd, he was 21st.", "She came third, he was twenty-first.", "ordinals"),
    case("On 2025-03-04 we met.", "On March fourth, twenty twenty-five we met.", "iso-date"),
    case("March 4, 2025", "March fourth, twenty twenty-five.", "month-day-year"),
    case("4 March 2025", "the fourth of March, twenty twenty-five.", "day-month-year"),
    case(
        "Due 03/04/2025 or 25/12/2025.",
        "Due March fourth, twenty twenty-five or December twenty-fifth, twenty twenty-five.",
        "slash-dates",
    ),
    case("At 10:30am we start.", "At ten thirty a m we start.", "time-am"),
    case("At 10 a.m. Then we left.", "At ten a m. Then we left.", "time-ends-sentence"),
    case("9:05 PM or 14:05 or 14:00", "nine oh five p m or fourteen oh five or fourteen hundred.", "times"),
    case("Meet at 12:00.", "Meet at twelve o'clock.", "oclock"),
    case("Open 9a.m. to 5p.m. daily", "Open nine a m to five p m daily.", "meridiem-attached"),
    case("It was in 1999.", "It was in nineteen ninety-nine.", "year-after-in"),
    case(
        "Opened (March 2025) in 2024-05-01.",
        "Opened (March twenty twenty-five) in May first, twenty twenty-four.",
        "month-year",
    ),
    case("Step 1. March on.", "Step one. March on.", "day-period-not-english"),
    case("2005", "two thousand five.", "year-alone"),
    case(
        "The year 2024 was fine; 2024 people came.",
        "The year twenty twenty-four was fine; two thousand twenty-four people came.",
        "year-or-count",
    ),
    case("The 1990s and the '80s.", "The nineteen nineties and the eighties.", "decades"),
    case(
        "From 1990-1995, pages 10-20.", "From nineteen ninety to nineteen ninety-five, pages ten to twenty.", "ranges"
    ),
    case(
        "Call +1 555 123 4567.",
        "Call plus one, five five five, one two three, four five six seven.",
        "phone-international",
    ),
    case("Or (555) 123-4567.", "Or five five five, one two three, four five six seven.", "phone-us"),
    case("Run 5 km in 3 kg shoes.", "Run five kilometres in three kilograms shoes.", "units"),
    case(
        "It is 20 °C, 1 °C or -1 °C.",
        "It is twenty degrees Celsius, one degree Celsius or minus one degree Celsius.",
        "degrees",
    ),
    case("Drive 100 km/h.", "Drive one hundred kilometres per hour.", "speed"),
    case(
        "5 GB, 1 km, 0.5 kg, 2.4 GHz",
        "five gigabytes, one kilometre, zero point five kilograms, two point four gigahertz.",
        "unit-plurals",
    ),
    case("It is 2x faster.", "It is two times faster.", "multiplier"),
    case("Half is 1/2 and 3/4 of it.", "Half is one half and three quarters of it.", "fractions"),
    case("v1.2.3 is out", "version one point two point three is out.", "version"),
    case("Python 3.11 and Django 5.2", "Python three point eleven and Django five point two.", "named-versions"),
    case(
        "The IP is 192.168.1.1.", "The IP is one hundred ninety-two dot one hundred sixty-eight dot one dot one.", "ip"
    ),
    case("Step 1: do this.", "Step one: do this.", "step-colon"),
    case("~5 min, #1 fan", "about five minutes, number one fan.", "about-number-sign"),
]

ABBREVIATIONS = [
    case("**Dr. Smith** arrived.", "Doctor Smith arrived.", "doctor"),
    case("Mr. Jones met Prof. Lee.", "Mister Jones met Professor Lee.", "titles"),
    case("Fruit, e.g. apples, i.e. red ones.", "Fruit, for example apples, that is red ones.", "eg-ie"),
    case("Apples, pears, etc. Then more.", "Apples, pears, et cetera. Then more.", "etc-ends-sentence"),
    case("Cats vs. dogs, approx. 5 of them.", "Cats versus dogs, approximately five of them.", "vs-approx"),
    case("J. R. R. Tolkien wrote it.", "J R R Tolkien wrote it.", "initials"),
    case("The U.S. Army and the U.K.", "The U S Army and the U K.", "dotted-acronyms"),
    case("Main St. and St. Louis", "Main Street and Saint Louis.", "street-saint"),
    case("In (St. Louis) now", "In (Saint Louis) now.", "abbreviation-after-bracket"),
    case("I said no. No. 5 is next.", "I said no. Number five is next.", "number-abbreviation"),
    case("R&D and Q&A", "R and D and Q and A.", "ampersand"),
    case("Use snake_case_name here", "Use snake case name here.", "underscores"),
    case("Well... I think so.", "Well... I think so.", "ellipsis"),
    case('He said "I\'m done."', 'He said "I\'m done."', "quoted-sentence"),
]

CORPUS = MARKDOWN + LINKS + EMOJI + NUMBERS + ABBREVIATIONS


def test_the_corpus_covers_every_rule():
    assert len(CORPUS) >= 80


@pytest.mark.parametrize(("shown", "expected"), CORPUS)
def test_said_as_a_person_would(shown, expected):
    assert said(shown) == expected


@pytest.mark.parametrize(("shown", "expected"), CORPUS)
def test_any_deltas_say_the_same_with_the_same_spans(shown, expected):
    whole = sentences(shown)[0]
    for step in (1, 2, 3):
        found, pieces = sentences(shown, step)
        assert found == whole, f"in deltas of {step}"
        assert_pieces_tile(shown, pieces)
    assert_spans_are_sane(shown, whole)


def assert_pieces_tile(shown: str, pieces: list[Piece]) -> None:
    """Every displayed character is stood for by exactly one piece, in order."""
    position = 0
    for piece in pieces:
        assert piece.start == position, piece
        assert piece.end >= piece.start
        position = piece.end
    assert position == len(shown)


def assert_spans_are_sane(shown: str, found: list[Sentence]) -> None:
    previous = 0
    for sentence in found:
        assert previous <= sentence.start < sentence.end <= len(shown), sentence
        # It starts where its first word (or markup) does: a hard line break's spaces may end it.
        assert not shown[sentence.start].isspace(), sentence
        previous = sentence.end


# Odd markdown, made of the constructs above run together, to catch hold-back that depends on
# where a delta happens to end.
FRAGMENTS = (
    "Hello", "world", "**", "*", "_", "~~", "`", "[", "]", "](", "(", ")", "https://www.example.com/a?b",
    "ana.lopez@example.org", "$19.99", "3.50", "1,234", "5", "km", "°C", "%", "-", "10:30am", "a.m.",
    "2025-03-04", "March", "4,", "1999", "in", "Dr.", "J.", "R.", "Tolkien", "e.g.", "etc.", "No.", "St.",
    "v1.2.3", "Python", "3.11", "🎉", "👍🏽", "&amp;", "&", "<b>", "<br>", "<", "\\*", "#", "## ", "- ",
    "1. ", "> ", "|", "---", "```", "\n", "\n\n", "    ", ".", ",", "!", "...", "+1", "555", "(555)",
    "U.S.", "[^1]", "![", "snake_case",
)  # fmt: skip


def test_random_markdown_says_the_same_in_any_deltas():
    rng = random.Random(10)
    for _ in range(150):
        shown = "".join(rng.choice(FRAGMENTS) + rng.choice(("", " ", " ")) for _ in range(rng.randint(3, 30)))
        whole = sentences(shown)[0]
        for step in (1, 2, 3):
            found, pieces = sentences(shown, step)
            assert found == whole, (shown, step)
            assert_pieces_tile(shown, pieces)


# --- Spans for highlighting ----------------------------------------------------------
def spans(shown: str) -> list[tuple[str, str]]:
    return [(sentence.text, shown[sentence.start : sentence.end]) for sentence in sentences(shown, 2)[0]]


def test_a_sentence_highlights_its_markup_too():
    assert spans("**Dr. Smith** arrived. Then *we* left.") == [
        ("Doctor Smith arrived.", "**Dr. Smith** arrived."),
        ("Then we left.", "Then *we* left."),
    ]


def test_headings_items_and_links_highlight_their_whole_line():
    shown = "## Plan\n- Buy **5 kg** of flour\n- Visit [our site](https://shop.example.com/a)\n"
    assert spans(shown) == [
        ("Plan.", "## Plan"),
        ("Buy five kilograms of flour.", "- Buy **5 kg** of flour"),
        ("Visit our site.", "- Visit [our site](https://shop.example.com/a)"),
    ]


def test_a_code_block_highlights_the_block_and_a_row_its_row():
    shown = "Run:\n```\nls -l\n```\n| A | B |\n|---|---|\n| 1 | 2 |"
    assert spans(shown) == [
        ("Run:", "Run:"),
        (CODE, "```\nls -l\n```"),
        ("A: one, B: two.", "| 1 | 2 |"),
    ]


def test_text_said_as_written_maps_character_by_character():
    shown = "Plain words, nothing to change here. Another one!"
    found, pieces = sentences(shown, 3)
    assert all(shown[piece.start : piece.end] == piece.text for piece in pieces)
    assert [shown[s.start : s.end] for s in found] == ["Plain words, nothing to change here.", "Another one!"]


# --- Streaming: hold back only what may still change -----------------------------------
def fed(*deltas: str, **options) -> list[str]:
    """What has been said after each delta."""
    speech, so_far, out = SpeechText(**options), "", []
    for delta in deltas:
        so_far += "".join(piece.text for piece in speech.feed(delta))
        out.append(so_far)
    return out


def test_a_word_is_said_once_it_is_complete():
    assert fed("Hello the", "re, my fr", "iend ") == ["Hello ", "Hello there, my ", "Hello there, my friend "]


def test_a_number_waits_for_the_word_that_may_be_its_unit():
    assert fed("It is 5", " k", "m long") == ["It is ", "It is ", "It is five kilometres "]


def test_a_link_waits_only_for_its_destination():
    said_so_far = fed("See [the ", "docs](https://exa", "mple.com) now")
    assert said_so_far == ["See the ", "See the ", "See the docs "]


def test_a_code_block_is_said_when_it_closes_and_stands_for_the_whole_block():
    speech = SpeechText()
    assert speech.feed("```\nprint(1)\n") == []
    assert speech.feed("```\nMore") == [Piece(CODE, 0, 16), Piece("\n", 16, 17)]


def test_the_first_clause_is_not_held_back():
    speech, splitter = SpeechText(), SentenceSplitter(first_clause_chars=24)
    first = splitter.feed(speech.feed("Sure, the total comes to $19.99, which is fine"))
    assert [s.text for s in first] == ["Sure, the total comes to nineteen dollars and ninety-nine cents,"]


# --- Settings and languages --------------------------------------------------------------
def test_the_code_phrase_comes_from_the_settings(settings):
    settings.VOICE_SPEECH_CODE_PHRASE = "See the code."
    assert said("Try:\n```\nls\n```") == "Try: See the code."
    assert said("```\nls\n```", code_phrase="Code on screen.") == "Code on screen."


def test_emoji_may_be_kept_for_the_voice(settings):
    settings.VOICE_SPEECH_EMOJI = "keep"
    assert said("Great job 🎉") == "Great job 🎉."
    assert said("Great job 🎉", emoji="drop") == "Great job."


def test_an_unknown_emoji_mode_is_refused():
    with pytest.raises(ValueError, match="drop, keep"):
        SpeechText(emoji="shout")


@pytest.mark.parametrize(
    ("language", "shown", "expected"),
    [
        (
            "fr",
            "Il fait 3,5 degrés le 4 mars 2025 : 1.000 personnes, 19,99 € à 50 %.",
            "Il fait trois virgule cinq degrés le quatre mars deux mille vingt-cinq : mille personnes, "
            "dix-neuf euros et quatre-vingt-dix-neuf centimes à cinquante pour cent.",
        ),
        (
            "de",
            "Es kostet 1.234,50 € und z. B. 50 % um 14:05.",
            "Es kostet eintausendzweihundertvierunddreißig Euro und fünfzig Cent und zum Beispiel fünfzig Prozent "
            "um vierzehn Uhr fünf.",
        ),
        ("es", "Son 3 km el 2025-03-04.", "Son tres km el cuatro de marzo de dos mil veinticinco."),
        (
            "xx",
            "It costs $19.99 on 2025-03-04.",
            "It costs nineteen dollars and ninety-nine cents on March fourth, twenty twenty-five.",
        ),
    ],
    ids=["french", "german", "spanish", "unknown-language-english-rules"],
)
def test_numbers_in_the_voices_language(language, shown, expected):
    assert said(shown, language=language) == expected
    assert sentences(shown, 1, language=language)[0] == sentences(shown, language=language)[0]
