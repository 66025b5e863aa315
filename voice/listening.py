"""Voice input on the chat socket: one utterance at a time, transcribed as it arrives.

The page sends ``speech.start``, binary frames of 16 kHz mono PCM16, then
``speech.end`` (or ``speech.cancel``). While audio arrives, ``Listening``
sends the speaking tab a partial transcript for every VOICE_STT_PARTIAL_SECONDS
of new audio (one transcription at a time, so that they never pile up); at the
end ``finish`` gives the final transcript, or raises NoSpeech when nothing was
said. Transcription runs in the supervised model pool (``voice.stt.service``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np
from django.conf import settings

from . import protocol
from .stt import SAMPLE_RATE, NoSpeech, STTError, Transcript
from .stt.service import transcription
from .stt.session import Utterance

logger = logging.getLogger(__name__)

# Audio quieter than this (RMS, full scale 1) after the last partial is a pause, not words.
SILENCE_RMS = 0.01


class Listening:
    def __init__(
        self, send: Callable[[protocol.Event], Awaitable[None]], language: str | None = None, owner: str | None = None
    ) -> None:
        self.send = send
        self.owner = owner  # the account its transcriptions count against (VOICE_STT_USER_JOBS)
        self.utterance = Utterance(language=language)
        self._partial: asyncio.Task | None = None
        self._partial_bytes = 0  # audio the latest partial covered
        self._latest: Transcript | None = None
        self._latest_bytes = -1

    def add(self, pcm: bytes) -> None:
        """More audio; may start a partial transcription. STTError (too long, odd bytes) ends the utterance."""
        self.utterance.add(pcm)
        every = settings.VOICE_STT_PARTIAL_SECONDS
        # Optional work: none while other transcriptions wait (somebody's finished words come first).
        if every and (self._partial is None or self._partial.done()) and not transcription().waiting:
            heard = round(self.utterance.duration * SAMPLE_RATE * 2)
            if heard - self._partial_bytes >= every * SAMPLE_RATE * 2:
                self._partial_bytes = heard
                self._partial = asyncio.create_task(self._send_partial())

    async def _send_partial(self) -> None:
        pcm = self.utterance.pcm()
        try:
            transcript = await transcription().transcribe(pcm, self.utterance.language, self.owner)
        except STTError as exc:
            logger.info("A partial transcript failed: %s", exc)
            return
        self._latest, self._latest_bytes = transcript, len(pcm)
        if transcript.text:
            await self.send(protocol.Transcribed(transcript.text, final=False))

    async def finish(self) -> Transcript:
        """The utterance's final transcript; NoSpeech if nothing was said."""
        if self._partial is not None and not self._partial.done():
            await self._partial  # one transcription at a time; its result may be all we need
        pcm = self.utterance.pcm()
        if self._latest is not None and only_silence_after(pcm, self._latest_bytes):
            transcript = self._latest  # nothing but a pause since it was made
        else:
            transcript = await transcription().transcribe(pcm, self.utterance.language, self.owner)
        if not transcript.text:
            raise NoSpeech(f"No words in {self.utterance.duration:.1f} s of audio.")
        return transcript

    def cancel(self) -> None:
        if self._partial is not None:
            self._partial.cancel()


def only_silence_after(pcm: bytes, offset: int) -> bool:
    """Whether the audio from byte ``offset`` on holds no more than a pause."""
    if offset < 0 or offset > len(pcm):
        return False
    tail = np.frombuffer(pcm[offset - offset % 2 :], dtype="<i2").astype(np.float32) / 32768
    return tail.size == 0 or float(np.sqrt(np.mean(tail**2))) < SILENCE_RMS
