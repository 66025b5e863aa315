"""Speech engines for tests, selected through VOICE_TTS_ENGINE by dotted path."""

import threading

import numpy as np

from voice.audio import AudioChunk
from voice.tts import BaseEngine, TTSError, Voice

RATE = 16000


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


class ToneEngine(BaseEngine):
    """0.1 s of a 440 Hz tone per sentence, as float32 (what many engines give)."""

    name = "tone"

    def voices(self):
        return [Voice(id="a440", name="A440", language="en", engine=self.name, sample_rate=RATE)]

    def generate(self, text, voice, speed):
        yield AudioChunk(data=tone(0.1 / speed), sample_rate=RATE)


class GatedEngine(ToneEngine):
    """Yields the first sentence at once, then waits for the test to open the gate."""

    gate = threading.Event()
    calls = 0

    def generate(self, text, voice, speed):
        type(self).calls += 1
        if type(self).calls > 1 and not self.gate.wait(timeout=10):
            raise TTSError("The test never opened the gate.")
        yield from super().generate(text, voice, speed)


class FailingEngine(ToneEngine):
    """Speaks the first sentence, then fails like an engine losing its backend."""

    calls = 0

    def generate(self, text, voice, speed):
        type(self).calls += 1
        if type(self).calls > 1:
            raise TTSError("The speech backend went away.", code="tts_unreachable")
        yield from super().generate(text, voice, speed)


class LeakyEngine(ToneEngine):
    """Fails with the kind of message a real library gives: paths and keys included."""

    def generate(self, text, voice, speed):
        raise RuntimeError("onnx session /srv/models/secret-voice.onnx failed; api_key=sk-leak-9876")


class FailingFirstEngine(ToneEngine):
    """Fails before producing anything."""

    def generate(self, text, voice, speed):
        raise TTSError("The backend at http://10.1.2.3:5000 refused us.", code="tts_unreachable")
        yield  # pragma: no cover


class FaultyEngine(ToneEngine):
    """Misbehaves on cue, the ways real engines do: "hang", "crash" (the process dies), "raise", "slow"."""

    name = "faulty"

    def generate(self, text, voice, speed):
        import os
        import time

        if "hang" in text:
            threading.Event().wait()
        if "crash" in text:
            os._exit(3)
        if "raise" in text:
            raise RuntimeError("engine exploded")
        if "slow" in text:
            time.sleep(0.5)
        yield from super().generate(text, voice, speed)


class LongToneEngine(ToneEngine):
    """Two seconds of audio per segment in a fifth of a second, recording the order segments start in."""

    name = "longtone"
    started: list = []

    def generate(self, text, voice, speed):
        import time

        type(self).started.append(text)
        time.sleep(0.2)
        yield AudioChunk(data=tone(2.0 / speed), sample_rate=RATE)
