"""Numbers as a person says them: amounts, money, percentages, ordinals, dates, times, years,
phone numbers, units and versions.

num2words gives the words in the voice's language; languages it does not know are read with
English rules. Dates, times, units, decades and fractions have English readings (plus dates and
times in a few languages whose month names are listed here); elsewhere they are left as written,
for the voice's own reading, rather than read with English words in the middle of, say, German.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from functools import cache, lru_cache

import inflect
from num2words import CONVERTER_CLASSES, num2words

from .rules import Rule, alternation, ends_sentence, following, preceding_word, starts_sentence

# Languages that write 3,5 for three and a half, and 1.000 for a thousand.
COMMA_DECIMAL = frozenset(
    "az be ca cs da de eo es fi fr hr hu id is it kz lt lv nl no pl pt ro ru sk sl sr sv tr uk".split()
)

# Words that num2words does not give. A language missing here borrows the English word.
WORDS = {
    "en": {
        "percent": "percent",
        "to": "to",
        "and": "and",
        "plus": "plus",
        "version": "version",
        "about": "about",
        "hour": "",
    },
    "fr": {"percent": "pour cent", "to": "à", "and": "et", "about": "environ", "hour": "heures"},
    "de": {"percent": "Prozent", "to": "bis", "and": "und", "version": "Version", "about": "etwa", "hour": "Uhr"},
    "es": {"percent": "por ciento", "to": "a", "and": "con", "plus": "más", "version": "versión", "about": "unos"},
    "it": {"percent": "per cento", "to": "a", "and": "e", "version": "versione", "about": "circa"},
    "pt": {"percent": "por cento", "to": "a", "and": "e", "plus": "mais", "version": "versão", "about": "cerca de"},
    "nl": {"percent": "procent", "to": "tot", "and": "en", "about": "ongeveer", "hour": "uur"},
}

MONTHS = {
    "en": "January February March April May June July August September October November December".split(),
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split(),
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split(),
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre".split(),
}
_MONTH_ABBREVIATIONS = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9, "Sept": 9}
_MONTH_ABBREVIATIONS |= {"Oct": 10, "Nov": 11, "Dec": 12}

# Words before a four-digit number that make it a year ("in 1999"), per language.
YEAR_WORDS = {
    "en": frozenset("in since by from until till to year of circa c during before after early late mid around".split()),
    "fr": frozenset("en depuis année de à vers avant après".split()),
    "de": frozenset("im jahr seit bis von ab um vor nach".split()),
    "es": frozenset("en desde año de hasta a antes después".split()),
}
# Words before a number with one point that make it a version ("Python 3.11"), not a decimal.
VERSION_WORDS = frozenset(
    """version versions v release python django node nodejs java jdk ios android windows macos ubuntu debian fedora
    php ruby rails rust go golang perl kotlin swift scala typescript postgresql postgres mysql redis chrome firefox
    safari kubernetes docker git npm pip bootstrap react vue angular laravel gradle terraform mongodb http tls ssl
    bluetooth usb html css gpt llama numpy pandas lua dotnet .net""".split()
)

CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
CURRENCIES |= {code: code for code in ("USD", "EUR", "GBP", "JPY", "INR", "CHF", "CAD", "AUD")}
# num2words' English calls the plural of euro "euro" and the pound "pound sterling".
_ENGLISH_CURRENCY_FORMS = {
    "EUR": (("euro", "euros"), ("cent", "cents")),
    "GBP": (("pound", "pounds"), ("penny", "pence")),
    "JPY": (("yen", "yen"), ("sen", "sen")),
}
_SCALES = {"k": 3, "K": 3, "thousand": 3, "m": 6, "M": 6, "million": 6, "bn": 9, "B": 9, "billion": 9}
_SCALES["trillion"] = 12

# Unit symbols and what they are called, in English; "|" follows the word that takes the plural.
UNITS = {
    "km": "kilometre",
    "m": "metre",
    "cm": "centimetre",
    "mm": "millimetre",
    "µm": "micrometre",
    "nm": "nanometre",
    "mi": "mile",
    "ft": "foot",
    "yd": "yard",
    "kg": "kilogram",
    "g": "gram",
    "mg": "milligram",
    "µg": "microgram",
    "lb": "pound",
    "lbs": "pound",
    "oz": "ounce",
    "l": "litre",
    "L": "litre",
    "ml": "millilitre",
    "mL": "millilitre",
    "cl": "centilitre",
    "gal": "gallon",
    "°C": "degree| Celsius",
    "°F": "degree| Fahrenheit",
    "°": "degree",
    "km/h": "kilometre| per hour",
    "kph": "kilometre| per hour",
    "mph": "mile| per hour",
    "m/s": "metre| per second",
    "km²": "square kilometre",
    "m²": "square metre",
    "cm²": "square centimetre",
    "m³": "cubic metre",
    "ms": "millisecond",
    "µs": "microsecond",
    "sec": "second",
    "min": "minute",
    "mins": "minute",
    "h": "hour",
    "hr": "hour",
    "hrs": "hour",
    "B": "byte",
    "KB": "kilobyte",
    "kB": "kilobyte",
    "MB": "megabyte",
    "GB": "gigabyte",
    "TB": "terabyte",
    "KiB": "kibibyte",
    "MiB": "mebibyte",
    "GiB": "gibibyte",
    "TiB": "tebibyte",
    "kbps": "kilobit| per second",
    "Mbps": "megabit| per second",
    "Gbps": "gigabit| per second",
    "Hz": "hertz|",
    "kHz": "kilohertz|",
    "MHz": "megahertz|",
    "GHz": "gigahertz|",
    "W": "watt",
    "kW": "kilowatt",
    "MW": "megawatt",
    "kWh": "kilowatt hour",
    "Wh": "watt hour",
    "V": "volt",
    "mA": "milliamp",
    "mAh": "milliamp hour",
    "px": "pixel",
    "fps": "frame| per second",
    "dB": "decibel",
    "kcal": "kilocalorie",
    "x": "times|",
}
# Letters that are too often something else when a space separates them from the number ("5 W" in a list).
_ATTACHED_ONLY = frozenset("B W V x L l".split())
_UNIT_ALIASES = {"μm": "µm", "μs": "µs", "μg": "µg", "m2": "m²", "km2": "km²", "m3": "m³", "° C": "°C", "° F": "°F"}

_inflect = inflect.engine()


@lru_cache(maxsize=4096)
def _say(n: int, language: str, to: str) -> str:
    words = num2words(n, lang=language, to=to)
    if language == "en":
        # American usage, like the default voice: "two thousand five", "one hundred twenty".
        words = words.replace(",", "").replace(" and ", " ")
    return words


@cache
def unit_words(symbol: str) -> tuple[str, str]:
    """(singular, plural) English words for a unit symbol."""
    name = UNITS[symbol]
    if "|" not in name:
        return name, _inflect.plural_noun(name)
    head, rest = name.split("|", 1)
    if not rest and head.endswith(("hertz", "times")):
        return head, head
    return head + rest, _inflect.plural_noun(head) + rest


class Reader:
    """Number words in one language (English rules for languages num2words does not know)."""

    def __init__(self, language: str) -> None:
        self.language = language if language in CONVERTER_CLASSES else "en"
        self.english = self.language == "en"
        self.words = WORDS["en"] | WORDS.get(self.language, {})
        self.comma_decimal = self.language in COMMA_DECIMAL
        self.months = MONTHS.get(self.language)
        self._converter = CONVERTER_CLASSES[self.language]

    # --- Plain numbers ---------------------------------------------------------
    def cardinal(self, n: int) -> str:
        return _say(n, self.language, "cardinal")

    def ordinal(self, n: int) -> str:
        return _say(n, self.language, "ordinal")

    def year(self, n: int) -> str:
        return _say(n, self.language, "year")

    def digits(self, digits: str) -> str:
        return " ".join(self.cardinal(int(digit)) for digit in digits if digit.isdigit())

    def split(self, written: str) -> tuple[str, str | None]:
        """The integer and fraction digits of a written number, by the language's separators."""
        if self.comma_decimal:
            if "," in written:
                integer, fraction = written.rsplit(",", 1)
            elif _GROUPED_BY_DOTS.fullmatch(written) or "." not in written:
                integer, fraction = written, None
            else:
                integer, fraction = written.split(".", 1)
            return re.sub(r"[.\u00a0\u202f]", "", integer), fraction
        integer, _, fraction = written.partition(".")
        return integer.replace(",", ""), fraction or None

    def number(self, written: str) -> str:
        integer, fraction = self.split(written)
        if fraction is None:
            if len(integer) > 1 and integer.startswith("0"):
                return self.digits(integer)  # "007", a code rather than an amount
            return self.cardinal(int(integer))
        point = getattr(self._converter, "pointword", None)
        if point is None:
            return num2words(Decimal(f"{integer}.{fraction}"), lang=self.language)
        # Digit by digit after the point, as written: "three point five zero".
        return f"{self.cardinal(int(integer))} {point} {self.digits(fraction)}"

    def negative(self, words: str) -> str:
        return f"{getattr(self._converter, 'negword', 'minus ').strip()} {words}"

    def dotted(self, written: str, point: str | None = None) -> str:
        """A version or address: "1.2.3" → "one point two point three"."""
        point = point or getattr(self._converter, "pointword", None) or "point"
        return f" {point} ".join(self.number(part) for part in written.split("."))

    # --- Money -------------------------------------------------------------------
    def money(self, written: str, currency: str, scale: str | None = None) -> str:
        forms = self._currency_forms(currency)
        if forms is None:
            return f"{self.number(written)} {currency}"
        unit_forms, cent_forms = forms
        if scale:
            scale_word = num2words(10 ** _SCALES[scale], lang=self.language).split()[-1]
            return f"{self.number(written)} {scale_word} {self._plural(2, unit_forms)}"
        integer, fraction = self.split(written)
        if fraction is None or len(fraction) != 2:
            count = 1 if integer == "1" and fraction is None else 2
            return f"{self.number(written)} {self._plural(count, unit_forms)}"
        whole, cents = int(integer), int(fraction)
        parts = []
        if whole or not cents:
            parts.append(f"{self.cardinal(whole)} {self._plural(whole, unit_forms)}")
        if cents:
            parts.append(f"{self.cardinal(cents)} {self._plural(cents, cent_forms)}")
        return f" {self.words['and']} ".join(parts)

    def _currency_forms(self, currency: str):
        if self.english and currency in _ENGLISH_CURRENCY_FORMS:
            return _ENGLISH_CURRENCY_FORMS[currency]
        return self._converter.CURRENCY_FORMS.get(currency)

    def _plural(self, count: int, forms: tuple[str, str]) -> str:
        if self.english:
            return forms[0] if count == 1 else forms[1]
        return self._converter.pluralize(count, forms)

    # --- Calendar ----------------------------------------------------------------
    def date(self, day: int, month: int, year: int | None, day_first: bool = False) -> str | None:
        if self.months is None or not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        name = self.months[month - 1]
        if self.language == "en":
            said = f"the {self.ordinal(day)} of {name}" if day_first else f"{name} {self.ordinal(day)}"
            return f"{said}, {self.year(year)}" if year else said
        if self.language == "de":
            said = f"{self.ordinal(day)} {name}"
        elif self.language == "es":
            said = f"{'primero' if day == 1 else self.cardinal(day)} de {name}"
        else:  # French
            said = f"{'premier' if day == 1 else self.cardinal(day)} {name}"
        joiner = " de " if self.language == "es" else " "
        return f"{said}{joiner}{self.year(year)}" if year else said

    def time(self, hour: int, minute: int, second: int | None, meridiem: str | None) -> str:
        words = self.cardinal(hour)
        if not self.english:
            said = f"{words} {self.words['hour']}".strip()
            return f"{said} {self.cardinal(minute)}" if minute else said
        if minute == 0:
            # "ten a m", "ten o'clock"; a 24-hour time as written: "fourteen hundred".
            if not meridiem:
                words += " hundred" if hour == 0 or hour > 12 else " o'clock"
        elif minute < 10:
            words += f" oh {self.cardinal(minute)}"
        else:
            words += f" {self.cardinal(minute)}"
        if second:
            words += f" and {self.cardinal(second)} {'second' if second == 1 else 'seconds'}"
        if meridiem:
            words += " a m" if meridiem[0] in "aA" else " p m"
        return words


_GROUPED_BY_DOTS = re.compile(r"\d{1,3}(?:[.\u00a0\u202f]\d{3})+")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])"
# How a day may be written before its month: "4th March", "1er mars", "4. März" (a German day is
# written with a period, so it is a sticky word there, see sticky_words).
_DAY_SUFFIX = {"en": "st|nd|rd|th", "fr": "er", "de": r"\."}


# --- Rules -----------------------------------------------------------------------
def _number_pattern(reader: Reader) -> str:
    if reader.comma_decimal:
        return r"(?:\d{1,3}(?:[.\u00a0\u202f]\d{3})+(?!\d)|\d+)(?:[,.]\d+)?"
    return r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"


def _is_year(written: str) -> bool:
    return written.isdigit() and len(written) == 4 and 1100 <= int(written) < 2100


def _year_context(match: re.Match, reader: Reader) -> bool:
    after = following(match)
    return (
        preceding_word(match) in YEAR_WORDS.get(reader.language, YEAR_WORDS["en"])
        or starts_sentence(match)
        or not after.strip(" \t")
        or after[0] in ".,;:!?)\n"
    )


def _say_quantity(match: re.Match, reader: Reader) -> str | None:
    sign, first, second = match.group("q_sign", "q_number", "q_to")
    unit = match.group("q_spaced") or match.group("q_unit")
    if unit is None and second is None and sign is None:
        _, fraction = reader.split(first)
        if fraction is not None and "," not in first and preceding_word(match) in VERSION_WORDS:
            return reader.dotted(first)
        if _is_year(first) and _year_context(match, reader):
            return reader.year(int(first))
    years = second is not None and unit is None and _is_year(first) and _is_year(second)
    words = reader.year(int(first)) if years else reader.number(first)
    if sign:
        words = reader.negative(words)
    if second is not None:
        words += f" {reader.words['to']} {reader.year(int(second)) if years else reader.number(second)}"
    if unit is None:
        return words
    if unit == "%":
        return f"{words} {reader.words['percent']}"
    symbol = _UNIT_ALIASES.get(unit, unit)
    if not reader.english:
        return f"{words} {unit}"  # the voice knows its own unit names better than a table here
    singular, plural = unit_words(symbol)
    last = second or first
    return f"{words} {singular if last == '1' and not (sign and second) else plural}"


def _say_money(match: re.Match, reader: Reader) -> str:
    sign, symbol, amount, scale = match.group("money_sign", "money_currency", "money_amount", "money_scale")
    words = reader.money(amount, CURRENCIES[symbol], scale)
    return reader.negative(words) if sign else words


def _say_money_after(match: re.Match, reader: Reader) -> str:
    return reader.money(match.group("money_after_amount"), CURRENCIES[match.group("money_after_currency")])


def _say_phone(match: re.Match, reader: Reader) -> str:
    written = match.group()
    groups = [reader.digits(group) for group in re.findall(r"\d+", written)]
    said = ", ".join(groups)
    return f"{reader.words['plus']} {said}" if written.startswith("+") else said


def _say_iso_date(match: re.Match, reader: Reader) -> str | None:
    year, month, day = (int(part) for part in match.group("iso_year", "iso_month", "iso_day"))
    return reader.date(day, month, year)


def _say_slash_date(match: re.Match, reader: Reader) -> str | None:
    first, second, year = (int(part) for part in match.group("slash_first", "slash_second", "slash_year"))
    # The default voice is American: month first, unless that cannot be.
    if reader.english and first <= 12:
        return reader.date(second, first, year)
    return reader.date(first, second, year)


def _month(written: str, reader: Reader) -> int:
    written = written.rstrip(".")
    if written in _MONTH_ABBREVIATIONS:
        return _MONTH_ABBREVIATIONS[written]
    return [month.lower() for month in reader.months].index(written.lower()) + 1


def _say_month_day(match: re.Match, reader: Reader) -> str | None:
    month = _month(match.group("md_month"), reader)
    year = match.group("md_year")
    return reader.date(int(match.group("md_day")), month, int(year) if year else None)


def _say_month_year(match: re.Match, reader: Reader) -> str:
    month = reader.months[_month(match.group("my_month"), reader) - 1]
    return f"{month} {reader.year(int(match.group('my_year')))}"


def _say_day_month(match: re.Match, reader: Reader) -> str | None:
    month = _month(match.group("dm_month"), reader)
    year = match.group("dm_year")
    return reader.date(int(match.group("dm_day")), month, int(year) if year else None, day_first=True)


def _say_time(match: re.Match, reader: Reader) -> str | None:
    hour, minute, second = match.group("time_hour", "time_minute", "time_second")
    meridiem = match.group("time_meridiem") or match.group("time_meridiem_only")
    if minute is None and not 1 <= int(hour) <= 12:
        return None
    if meridiem and not reader.english:
        return None
    words = reader.time(int(hour), int(minute or 0), int(second) if second else None, meridiem)
    # "a.m." may also end the sentence: keep a period then.
    return words + "." if meridiem and meridiem.endswith(".") and ends_sentence(match) else words


def _say_ordinal(match: re.Match, reader: Reader) -> str:
    return reader.ordinal(int(match.group("ordinal_number")))


def _say_decade(match: re.Match, reader: Reader) -> str:
    century, decade = match.group("decade_century", "decade_digit")
    if century:
        words = reader.year(int(f"{century}{decade}0"))
    else:
        words = reader.cardinal(int(decade) * 10)
    # "nineteen ninety" → "nineteen nineties"; "two thousand" → "two thousands"
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _say_fraction(match: re.Match, reader: Reader) -> str | None:
    numerator, denominator = int(match.group("fraction_numerator")), int(match.group("fraction_denominator"))
    if not 0 < numerator < denominator <= 10:
        return None
    if denominator == 2:
        name = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        name = "quarter" if numerator == 1 else "quarters"
    else:
        name = reader.ordinal(denominator) + ("" if numerator == 1 else "s")
    return f"{reader.cardinal(numerator)} {name}"


def _say_version(match: re.Match, reader: Reader) -> str:
    return f"{reader.words['version']} {reader.dotted(match.group('version_number'))}"


def _say_dotted(match: re.Match, reader: Reader) -> str:
    written = match.group("dotted_number")
    parts = written.split(".")
    if len(parts) == 4 and all(int(part) <= 255 for part in parts):
        return reader.dotted(written, point="dot")  # an IP address
    return reader.dotted(written)


def rules(reader: Reader) -> list[Rule]:
    """The number rules for one language: those that may start at the same character, most specific first."""
    number = _number_pattern(reader)
    english = reader.english
    found = []
    if reader.months:
        months = alternation(reader.months + (list(_MONTH_ABBREVIATIONS) if english else []))
        if english:
            found += [
                Rule(
                    "md",
                    rf"(?<![\w])(?P<md_month>{months})\.?[ ](?P<md_day>{_DAY})(?:st|nd|rd|th)?"
                    rf"(?:,?[ ](?P<md_year>\d{{4}}))?(?![\w]|[.,]\d)",
                    _say_month_day,
                    starts="[A-Z]",
                ),
                Rule(
                    "my",
                    rf"(?<![\w])(?P<my_month>{months})\.?[ ](?P<my_year>\d{{4}})(?![\w\-]|[.,]\d)",
                    _say_month_year,
                    starts="[A-Z]",
                ),
            ]
    found += [
        Rule("version", r"(?<![\w.])[vV](?P<version_number>\d+(?:\.\d+)*)(?![\w]|\.\d)", _say_version, "[vV]"),
        Rule(
            "money",
            rf"(?<![\w.,])(?P<money_sign>[-−])?(?P<money_currency>[$€£¥₹])[ ]?(?P<money_amount>{number})"
            rf"(?:[ ]?(?P<money_scale>{alternation(_SCALES)})(?![\w]))?(?![\w]|[.,]\d)",
            _say_money,
            starts="[-−$€£¥₹]",
        ),
    ]
    numeric = [
        Rule(
            "phone",
            r"(?<![\w+.,])(?:\+\d{1,3}(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]\d{1,4}){2,5}"
            r"|\(\d{3}\)[ ]?\d{3}[-. ]\d{4}|(?:1[-.])?\d{3}[-.]\d{3}[-.]\d{4}|\d{3} \d{3} \d{4}|\d{3}-\d{4})"
            r"(?![\w\-]|[.,]\d)",
            _say_phone,
        ),
        Rule(
            "iso",
            r"(?<![\w.\-])(?P<iso_year>\d{4})-(?P<iso_month>0[1-9]|1[0-2])-(?P<iso_day>0[1-9]|[12]\d|3[01])(?![\w\-])",
            _say_iso_date,
        ),
        Rule(
            "slash",
            r"(?<![\w./])(?P<slash_first>\d{1,2})/(?P<slash_second>\d{1,2})/(?P<slash_year>\d{4})(?![\w/])",
            _say_slash_date,
        ),
        Rule(
            "fraction",
            r"(?<![\w./,])(?P<fraction_numerator>\d)/(?P<fraction_denominator>\d{1,2})(?![\w/]|[.,]\d)",
            _say_fraction,
        ),
    ]
    if reader.months:
        numeric.append(
            Rule(
                "dm",
                rf"(?<![\w.,])(?P<dm_day>{_DAY})(?:{_DAY_SUFFIX.get(reader.language, '')})?[ ](?:of[ ]|de[ ])?"
                rf"(?P<dm_month>{months})\.?"
                rf"(?:,?[ ](?:de[ ])?(?P<dm_year>\d{{4}}))?(?![\w]|[.,]\d)",
                _say_day_month,
            )
        )
    meridiem = r"[aApP]\.?[mM]\b\.?"
    numeric += [
        Rule(
            "time",
            r"(?<![\w.,:])(?P<time_hour>[01]?\d|2[0-3])(?::(?P<time_minute>[0-5]\d)(?::(?P<time_second>[0-5]\d))?"
            rf"(?:[ ]?(?P<time_meridiem>{meridiem}))?|[ ]?(?P<time_meridiem_only>{meridiem}))(?![\w:])",
            _say_time,
        ),
        Rule("dotted", r"(?<![\w.])(?P<dotted_number>\d+\.\d+\.\d+(?:\.\d+)*)(?![\w]|\.\d)", _say_dotted),
        Rule(
            "money_after",
            rf"(?<![\w.,])(?P<money_after_amount>{number})[ \u00a0]?"
            rf"(?P<money_after_currency>[€$£¥₹]|{alternation(c for c in CURRENCIES if len(c) == 3)})(?![\w])",
            _say_money_after,
        ),
    ]
    if english:
        numeric.append(
            Rule(
                "decade",
                r"(?<![\w.,])(?:(?P<decade_century>1\d|20)|')?(?P<decade_digit>\d)0'?s(?![\w])",
                _say_decade,
            )
        )
    ordinal = {"en": r"st|nd|rd|th", "fr": r"er|re|ème|eme|e", "es": r"º|ª|°|\.º|\.ª", "it": r"º|°|ª"}
    if reader.language in ordinal or reader.language not in MONTHS:
        numeric.append(
            Rule(
                "ordinal",
                rf"(?<![\w.,])(?P<ordinal_number>\d+)(?:{ordinal.get(reader.language, ordinal['en'])})(?![\w])",
                _say_ordinal,
            )
        )
    every = alternation(set(UNITS) | set(_UNIT_ALIASES)) + r"(?![\w/²³])"
    spaced = alternation(set(UNITS) - _ATTACHED_ONLY | set(_UNIT_ALIASES)) + r"(?![\w/²³])"
    numeric.append(
        Rule(
            "q",
            rf"(?<![\w.,\-−])(?P<q_sign>[-−](?=\d))?(?P<q_number>{number})"
            rf"(?:[ ]?[-–—][ ]?(?P<q_to>{number}))?"
            rf"(?:[ \u00a0](?P<q_spaced>{spaced}|%)|(?P<q_unit>{every}|%))?(?![\w])",
            _say_quantity,
        )
    )
    return found + [replace(rule, starts=r"[-−+('0-9]") for rule in numeric]


# Words whose reading may depend on the word after them: held back until it is known.
def sticky_words(reader: Reader) -> str:
    months = ""
    if reader.months:
        months = r"|\S*(?:" + alternation(reader.months + list(_MONTH_ABBREVIATIONS)) + r")\.?,?"
    day_with_point = r"|\d{1,2}\." if reader.language == "de" else ""
    # "a.m." may end the sentence, which the next word tells.
    return rf"\S*\d\S*(?<![.!?;:…]){day_with_point}|[-–—$€£¥₹+(~≈#]|\S*[aApP]\.?[mM]\.{months}"
