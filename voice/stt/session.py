"""One utterance as it is spoken: audio arrives in pieces, text is wanted early.

``Utterance`` keeps the audio so far (mono PCM16 at 16 kHz) within
VOICE_STT_MAX_SECONDS. ``partial()`` re-transcribes everything heard so far.
Each partial costs as much as a final transcript of the audio so far (a
few tenths of a second of CPU for a short question, see voice.stt.whisper):
ask for one at a time, not one per chunk. Methods block; ``add`` may be
called from one thread while another runs ``partial``.
"""

from __future__ import annotations

import threading

from django.conf import settings

from .. import audio
from . import get_transcriber
from .base import SAMPLE_RATE, BadAudio, BaseTranscriber, NoSpeech, STTError, Transcript, UtteranceTooLong


class Utterance:
    def __init__(
        self,
        transcriber: BaseTranscriber | None = None,
        *,
        language: str | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self._transcriber = transcriber
        self.language = language
        self.max_seconds = settings.VOICE_STT_MAX_SECONDS if max_seconds is None else max_seconds
        self._pcm = bytearray()
        self._lock = threading.Lock()
        self._latest: Transcript | None = None
        self._latest_bytes = -1
        self._final: Transcript | None = None
        self._closed = False

    @property
    def transcriber(self) -> BaseTranscriber:
        """Resolved on first use: a caller that transcribes elsewhere (a model process) never loads one here."""
        if self._transcriber is None:
            self._transcriber = get_transcriber()
        return self._transcriber

    @property
    def max_bytes(self) -> int:
        return int(self.max_seconds * SAMPLE_RATE) * 2

    @property
    def duration(self) -> float:
        return audio.pcm_duration(len(self._pcm), SAMPLE_RATE)

    def add(self, pcm: bytes) -> None:
        """Append mono PCM16 at 16 kHz. A chunk that would pass the limit is refused whole."""
        if len(pcm) % 2:
            raise BadAudio("PCM16 chunks must hold whole samples (an even number of bytes).")
        with self._lock:
            if self._closed:
                raise STTError("This utterance is finished: start a new one.")
            if len(self._pcm) + len(pcm) > self.max_bytes:
                raise UtteranceTooLong(self.max_seconds)
            self._pcm += pcm

    def partial(self) -> Transcript:
        """What was said so far; the same transcript again when nothing was added since."""
        pcm = self._snapshot()
        if len(pcm) != self._latest_bytes:
            self._latest = self.transcriber.transcribe(pcm, SAMPLE_RATE, self.language)
            self._latest_bytes = len(pcm)
        return self._latest

    def final(self) -> Transcript:
        """The whole utterance's transcript; NoSpeech when nothing was said. Later ``add`` calls fail."""
        with self._lock:
            self._closed = True
        if self._final is None:
            self._final = self.partial()
        if not self._final.text:
            raise NoSpeech(f"No words in {self._final.duration:.1f} s of audio.")
        return self._final

    def wav(self) -> bytes:
        """The recording so far as a WAV file."""
        return audio.wav_bytes(self._snapshot(), SAMPLE_RATE)

    def pcm(self) -> bytes:
        """The recording so far, as PCM16 at 16 kHz (a copy: more may arrive meanwhile)."""
        return self._snapshot()

    def _snapshot(self) -> bytes:
        with self._lock:
            return bytes(self._pcm)
