"""A speech-to-text engine for tests, selected through VOICE_STT_ENGINE by dotted path."""

import threading

import numpy as np

from voice.stt import SAMPLE_RATE, BaseTranscriber, STTError, Transcript


class SecondsTranscriber(BaseTranscriber):
    """Hears "N.N seconds" in anything louder than silence: no model, instant, exact to assert."""

    name = "seconds"
    calls = 0

    def recognize(self, samples, language):
        type(self).calls += 1
        duration = len(samples) / SAMPLE_RATE
        loud = samples.size and float(np.sqrt(np.mean(samples**2))) > 0.01
        return Transcript(text=f"{duration:.1f} seconds" if loud else "", language=language or "", duration=duration)


class GatedTranscriber(SecondsTranscriber):
    """Like SecondsTranscriber, but each transcription waits for the test to open the gate."""

    name = "gated"
    gate = threading.Event()
    started = threading.Event()

    def recognize(self, samples, language):
        type(self).started.set()
        if not self.gate.wait(timeout=10):
            raise STTError("The test never opened the gate.")
        return super().recognize(samples, language)
