"""Abbreviations and symbols written for words: "Dr." → "Doctor", "e.g." → "for example", "&" → "and".

Each period in "Dr. Smith" or "J. R. R. Tolkien" is, to the voice, the end of a sentence (it pauses
and drops its pitch): saying the word, or the letters without their periods, avoids that.
"""

from __future__ import annotations

import re

from .rules import Rule, alternation, ends_sentence, following

# Written form → spoken form, per language. Capitalised variants are derived.
ABBREVIATIONS = {
    "en": {
        "Dr.": "Doctor",
        "Mr.": "Mister",
        "Mrs.": "Missus",
        "Ms.": "Miz",
        "Prof.": "Professor",
        "Jr.": "Junior",
        "Sr.": "Senior",
        "St.": "Saint",
        "Mt.": "Mount",
        "Ave.": "Avenue",
        "Blvd.": "Boulevard",
        "Dept.": "Department",
        "Ltd.": "Limited",
        "Fig.": "Figure",
        "No.": "Number",
        "e.g.": "for example",
        "i.e.": "that is",
        "etc.": "et cetera",
        "vs.": "versus",
        "vs": "versus",
        "approx.": "approximately",
        "cf.": "compare",
        "a.k.a.": "also known as",
        "max.": "maximum",
        "w/": "with",
        "w/o": "without",
    },
    "fr": {
        "M.": "Monsieur",
        "Mme": "Madame",
        "Mlle": "Mademoiselle",
        "Dr": "Docteur",
        "p. ex.": "par exemple",
        "c.-à-d.": "c'est-à-dire",
        "etc.": "et cetera",
    },
    "de": {
        "Dr.": "Doktor",
        "z. B.": "zum Beispiel",
        "z.B.": "zum Beispiel",
        "d. h.": "das heißt",
        "d.h.": "das heißt",
        "usw.": "und so weiter",
        "bzw.": "beziehungsweise",
        "ca.": "circa",
        "Nr.": "Nummer",
        "etc.": "et cetera",
    },
    "es": {
        "Sr.": "Señor",
        "Sra.": "Señora",
        "Dr.": "Doctor",
        "Dra.": "Doctora",
        "p. ej.": "por ejemplo",
        "etc.": "etcétera",
    },
}
# Abbreviations that also end the sentence when a capital or the end of the line follows.
_MAY_END_SENTENCE = frozenset({"etc.", "Ltd.", "Jr.", "Sr.", "usw.", "Ave.", "Blvd."})
# "No." and "Nr." are the word "no" unless a number follows.
_BEFORE_NUMBER = frozenset({"No.", "Nr."})

_AND = {"en": "and", "fr": "et", "de": "und", "es": "y", "it": "e", "pt": "e", "nl": "en"}
_NUMBER_SIGN = {"en": "number", "fr": "numéro", "de": "Nummer", "es": "número"}


def table(language: str) -> dict[str, str]:
    """Written → spoken, capitalised forms included ("E.g." → "For example")."""
    words = ABBREVIATIONS.get(language, ABBREVIATIONS["en"])
    capitalised = {key[0].upper() + key[1:]: value[0].upper() + value[1:] for key, value in words.items()}
    return capitalised | words


def _say_abbreviation(words_for: dict[str, str]):
    def speak(match: re.Match, reader) -> str | None:
        written = match.group()
        if written in _BEFORE_NUMBER and not re.match(r"\s*\d", following(match)):
            return None
        words = words_for[written]
        if written == "St." and not re.match(r"[ \t]+[A-Z]", following(match)):
            words = "Street"  # "St. Louis" is a saint, "Main St." a street
        if (written in _MAY_END_SENTENCE or words == "Street") and ends_sentence(match):
            words += "."
        return words

    return speak


def _say_initials(match: re.Match, reader) -> str | None:
    letters = match.group("initials_letters").split()
    if letters == ["I."]:
        return None  # more likely "World War I." than an initial
    return " ".join(letter.rstrip(".") for letter in letters) + " "


def _say_acronym(match: re.Match, reader) -> str:
    """ "U.S." → "U S", keeping the period when the line ends there."""
    words = " ".join(match.group().replace(".", " ").split())
    return words + "." if not following(match).strip(" \t")[:1].strip() else words


def rules(language: str) -> list[Rule]:
    written = table(language)
    and_word = _AND.get(language, "and")
    number_word = _NUMBER_SIGN.get(language, "number")
    firsts = "".join(sorted({re.escape(word[0]) for word in written}))
    found = [
        Rule(
            "abbreviation",
            rf"(?<![\w.])(?:{alternation(written)})(?![\w])",
            _say_abbreviation(written),
            starts=f"[{firsts}]",
        ),
        Rule(
            "initials",
            r"(?<![\w.])(?P<initials_letters>(?:[A-Z]\.[ ]){1,4})(?=[A-Z][a-z])",
            _say_initials,
            starts="[A-Z]",
        ),
        Rule("acronym", r"(?<![\w.])(?:[A-Z]\.){2,}(?![\w])", _say_acronym, starts="[A-Z]"),
        # Written for words, or markup the voice would spell out.
        Rule("underscore", r"(?<=[^\W_])_+(?=[^\W_])", lambda match, reader: " ", "_"),
        Rule("asterisk", r"\*+", lambda match, reader: "", r"\*"),
        Rule(
            "ampersand",
            r"(?<=[\w ])&(?=[\w ])",
            lambda match, reader: and_word if match.string[match.start() - 1] == " " else f" {and_word} ",
            "&",
        ),
        Rule("about", r"[~≈](?=\d)", lambda match, reader: reader.words["about"] + " ", "[~≈]"),
        Rule("number_sign", r"(?<![\w&])#(?=\d)", lambda match, reader: f"{number_word} ", "#"),
        Rule("and_or", r"(?<=[a-z])/(?=[a-z])", lambda match, reader: " ", "/"),
    ]
    return found


def sticky_words(language: str) -> str:
    """Words whose reading waits for the next word: abbreviations with a period, initials."""
    written = table(language)
    firsts = {key.split()[0] for key in written if " " in key}
    dotted = {key for key in written if key.endswith(".")}
    return rf"(?:[A-Z]\.)+|{alternation(firsts | dotted)}"
