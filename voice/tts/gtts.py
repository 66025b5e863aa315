"""gTTS: Google Translate's speech, for deployments that reach Google.

A voice is a language, optionally with a regional accent chosen by Google's
top-level domain: ``en`` or ``en:co.uk``. gTTS splits text into parts of at
most 100 characters and yields one MP3 per part, so audio streams part by part.
Speed: Google only knows "normal" and "slow" (speed below 0.8).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings

from ..audio import MP3, AudioChunk
from .base import BaseEngine, TTSError, Voice

SLOW_BELOW = 0.8
GTTS_SAMPLE_RATE = 24000

# Accents Google serves through regional domains (gTTS documentation).
ACCENTS = {
    "en": ["com.au", "co.uk", "ca", "co.in", "ie", "co.za", "com.ng"],
    "fr": ["ca", "fr"],
    "pt": ["com.br", "pt"],
    "es": ["com.mx", "es"],
}


class GTTSEngine(BaseEngine):
    name = "gtts"

    def __init__(self) -> None:
        self._voices: list[Voice] | None = None

    def voices(self) -> list[Voice]:
        if self._voices is None:
            from gtts.lang import tts_langs  # a static table: no network

            voices = []
            for code, language in sorted(tts_langs().items()):
                voices.append(self._voice(code, "com", language))
                for tld in ACCENTS.get(code, []):
                    voices.append(self._voice(code, tld, f"{language} ({tld})"))
            # English first: it is the default.
            voices.sort(key=lambda v: (v.language != "en", v.id))
            self._voices = voices
        return self._voices

    def _voice(self, lang: str, tld: str, label: str) -> Voice:
        voice_id = lang if tld == "com" else f"{lang}:{tld}"
        return Voice(id=voice_id, name=label, language=lang, engine=self.name, sample_rate=GTTS_SAMPLE_RATE)

    def generate(self, text: str, voice: Voice, speed: float) -> Iterator[AudioChunk]:
        from gtts import gTTS, gTTSError

        lang, _, tld = voice.id.partition(":")
        # An explicit timeout: gTTS's default waits forever.
        tts = gTTS(
            text,
            lang=lang,
            tld=tld or "com",
            slow=speed < SLOW_BELOW,
            lang_check=False,
            timeout=settings.VOICE_GTTS_TIMEOUT,
        )
        try:
            for part in tts.stream():
                yield AudioChunk(data=part, sample_rate=GTTS_SAMPLE_RATE, format=MP3)
        except AssertionError:
            # gTTS asserts when cleaning leaves nothing to say (e.g. "...").
            return
        except gTTSError as exc:
            raise self._error(exc) from exc

    @staticmethod
    def _error(exc: Exception) -> TTSError:
        response = getattr(exc, "rsp", None)
        if response is None:
            return TTSError(
                f"Google Text-to-Speech is unreachable ({exc}). Check the network or use the piper engine.",
                code="tts_unreachable",
                public_message="The speech service cannot be reached; the reply continues as text.",
            )
        if response.status_code == 429:
            # gTTS reports this as "Probable cause: Unknown" (gTTS#259).
            return TTSError(
                "Google Text-to-Speech is rate-limiting this server (HTTP 429). Try again later.",
                code="tts_rate_limited",
                public_message="The speech service is rate-limiting this server; the reply continues as text.",
            )
        return TTSError(f"Google Text-to-Speech failed: {exc}", code="tts_failed")
