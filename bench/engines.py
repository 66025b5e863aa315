"""A speech engine for the benchmark: Piper, except that it hangs on cue (like a stuck library call)."""

import threading

from voice.tts.piper import PiperEngine


class HangOnCue(PiperEngine):
    def generate(self, text, voice, speed):
        if "hang" in text.lower():
            threading.Event().wait()
        yield from super().generate(text, voice, speed)
