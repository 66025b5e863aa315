"""Web addresses and e-mail addresses, said the way people say them.

A URL is read as its site's name ("https://www.example.com/path?x" → "example dot com"): the
path is on screen, and spelled out it would take longer than the sentence around it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .rules import Rule

# How the parts of an address are called, per language; English for the rest.
_SYMBOLS = {
    "en": {"@": "at", ".": "dot", "_": "underscore", "-": "dash", "+": "plus"},
    "fr": {"@": "arobase", ".": "point", "_": "tiret bas", "-": "tiret", "+": "plus"},
    "de": {"@": "at", ".": "Punkt", "_": "Unterstrich", "-": "Bindestrich", "+": "plus"},
    "es": {"@": "arroba", ".": "punto", "_": "guion bajo", "-": "guion", "+": "más"},
    "it": {"@": "chiocciola", ".": "punto", "_": "trattino basso", "-": "trattino", "+": "più"},
    "pt": {"@": "arroba", ".": "ponto", "_": "sublinhado", "-": "hífen", "+": "mais"},
}
# Top-level domains common enough that "example.com" without a scheme is an address, not a typo;
# file extensions that are also domains (.py, .sh, .md) are left out on purpose.
_DOMAINS = "com org net edu gov io dev app ai co uk us de fr es it nl eu ca au info me tv ch se jp in br ru pl be at"

# A URL ends before punctuation that ends the sentence around it.
_URL_TAIL = r"""[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]"""


def _spell(part: str, symbols: dict[str, str], reader) -> str:
    words = []
    for token in re.findall(r"\d+|[A-Za-z\u00c0-\uffff]+|[^\w\s]|_", part):
        if token.isdigit():
            words.append(reader.digits(token) if len(token) > 1 and token[0] == "0" else reader.cardinal(int(token)))
        elif token in symbols:
            words.append(symbols[token])
        elif token.isalpha():
            words.append(token.lower())
    return " ".join(words)


def site_name(url: str, reader) -> str:
    """ "https://www.docs.example.com:8000/x" → "docs dot example dot com"."""
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or url
    host = host.removeprefix("www.")
    return _spell(host, _SYMBOLS.get(reader.language, _SYMBOLS["en"]), reader)


def email_address(address: str, reader) -> str:
    local, _, domain = address.partition("@")
    symbols = _SYMBOLS.get(reader.language, _SYMBOLS["en"])
    return f"{_spell(local, symbols, reader)} {symbols['@']} {_spell(domain, symbols, reader)}"


def rules() -> list[Rule]:
    return [
        Rule(
            "url",
            rf"(?<![\w@/.])(?:(?:https?|ftp)://|www\.){_URL_TAIL}",
            lambda match, reader: site_name(match.group(), reader),
            starts=r"[\w.+\-]",
        ),
        Rule(
            "email",
            r"(?<![\w.+\-])[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?![\w\-]|\.[A-Za-z0-9])",
            lambda match, reader: email_address(match.group(), reader),
            starts=r"[\w.+\-]",
        ),
        Rule(
            "domain",
            rf"(?<![\w@/.\-])(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+(?:{_DOMAINS.replace(' ', '|')})"
            rf"(?:/{_URL_TAIL})?(?![\w@\-]|\.[A-Za-z0-9])",
            lambda match, reader: site_name(match.group(), reader),
            starts=r"[\w.+\-]",
        ),
    ]
