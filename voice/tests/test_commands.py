import io
import wave

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from .conftest import assert_is_speech


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_synthesize_writes_a_wav_and_reports_speed(tmp_path):
    out = tmp_path / "hello.wav"
    report = run("synthesize", "Hello there. This is a test.", "--speed", "1.2", "--out", str(out))
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
        run("synthesize", *args)


def test_voices_lists_every_engine():
    table = run("voices")
    assert "en_US-joe-medium *" in table
    lines = table.splitlines()
    assert any(line.split()[:2] == ["gtts", "en:co.uk"] for line in lines)


@pytest.mark.django_db
def test_demouser_prints_a_working_login():
    report = run("demouser", "--username", "demo")
    password = report.split("password: ")[1].split()[0]
    # As a login form does: the login throttle (django-axes) needs the request.
    login = RequestFactory().post("/accounts/login/")
    user = authenticate(login, username="demo", password=password)
    assert user is not None and user.is_staff and user.has_perm("voice.view_conversation")
    again = run("demouser", "--username", "demo")
    assert "reset" in again and authenticate(login, username="demo", password=password) is None
