"""manage.py synthesize, with the real voice."""

import wave

import pytest
from django.core.management import CommandError

from voice.tests.helpers import assert_is_speech, run_command


def test_synthesize_writes_a_wav_and_reports_speed(tmp_path):
    out = tmp_path / "hello.wav"
    report = run_command("synthesize", "Hello there. This is a test.", "--speed", "1.2", "--out", str(out))
    with wave.open(str(out)) as wav:
        pcm = wav.readframes(wav.getnframes())
        seconds = wav.getnframes() / wav.getframerate()
    assert_is_speech(pcm, 22050, 1.0, 5.0)
    assert f"duration:         {seconds:.2f} s" in report
    assert "real-time factor:" in report and "synthesis time:" in report


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["  ", "--out", "x.wav"], "empty"),
        (["Hi.", "--voice", "nope", "--out", "x.wav"], "Unknown piper voice"),
        (["Hi.", "--out", "x.mp3"], "produces wav"),
        (["Hi.", "--engine", "nope", "--out", "x.wav"], "Unknown speech engine"),
        (["Hi.", "--speed", "9", "--out", "x.wav"], "Speed must be"),
    ],
)
def test_synthesize_errors_are_clear(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        run_command("synthesize", *args)
