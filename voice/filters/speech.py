"""What is said aloud for a displayed reply.

``SpeechText`` takes the reply as it streams and returns ``Piece``s: text to
speak, each with the span of displayed text it stands for, so that every
spoken sentence maps back to the characters a page highlights.

Three stages, each holding back only what the text still to come could change:
``markdown`` drops the markup, ``normalize`` writes numbers, addresses,
abbreviations and emoji as they are said, ``stops`` ends each line as a sentence.
"""

from __future__ import annotations

from django.conf import settings

from .emoji import DROP
from .markdown import MarkdownText
from .normalize import SpokenForms
from .pieces import Piece
from .stops import LineStops

__all__ = ["DEFAULT_CODE_PHRASE", "Piece", "SpeechText"]

DEFAULT_CODE_PHRASE = "I've put the code on screen."


def _setting(name: str, default: str) -> str:
    return getattr(settings, name, default) if settings.configured else default


class SpeechText:
    """Displayed text in, speakable pieces out, as the text streams.

    ``code_phrase`` (said for a code block) and ``emoji`` ("drop" or "keep") default to
    the settings VOICE_SPEECH_CODE_PHRASE and VOICE_SPEECH_EMOJI.
    """

    def __init__(self, language: str = "en", *, code_phrase: str | None = None, emoji: str | None = None) -> None:
        self.language = language
        if code_phrase is None:
            code_phrase = _setting("VOICE_SPEECH_CODE_PHRASE", DEFAULT_CODE_PHRASE)
        self._markdown = MarkdownText(code_phrase)
        self._forms = SpokenForms(language, emoji or _setting("VOICE_SPEECH_EMOJI", DROP))
        self._stops = LineStops()

    def feed(self, delta: str) -> list[Piece]:
        pieces = self._markdown.feed(delta) if delta else None
        pieces = self._forms.feed(pieces) if pieces else None
        return self._stops.feed(pieces) if pieces else []

    def flush(self) -> list[Piece]:
        return self._stops.flush(self._forms.feed(self._markdown.flush()) + self._forms.flush())
