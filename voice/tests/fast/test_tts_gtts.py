"""gTTS with Google's HTTP endpoint faked: nothing here reaches the network."""

import base64
import io

import pytest
import requests

from voice import audio
from voice.tts import TTSError, get_engine

from .test_audio import mp3_of


class FakeGoogle:
    """Stands in for requests.Session.send as gTTS uses it."""

    def __init__(self, status=200, error=None):
        self.status = status
        self.error = error
        self.requests = []
        self.timeouts = []
        self.parts = []

    def send(self, session, request, **kwargs):
        self.requests.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        if self.error:
            raise self.error
        response = requests.Response()
        response.status_code = self.status
        response.reason = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable"}.get(self.status, "")
        response.request = request
        part = mp3_of(0.3 + 0.1 * len(self.parts))
        self.parts.append(part)
        encoded = base64.b64encode(part).decode()
        # The shape of Google's batchexecute answer that gTTS parses.
        line = '[["wrb.fr","jQ1olc","[\\"' + encoded + '\\"]",null,null,null,"generic"]]'
        response.raw = io.BytesIO((")]}'\n\n" + line + "\n").encode())
        return response


@pytest.fixture
def google(monkeypatch):
    def install(**kwargs):
        fake = FakeGoogle(**kwargs)
        monkeypatch.setattr(requests.Session, "send", lambda session, request, **kw: fake.send(session, request, **kw))
        return fake

    return install


@pytest.fixture
def gtts_engine():
    return get_engine("gtts")


def test_voices_need_no_network(gtts_engine):
    voices = {v.id: v for v in gtts_engine.voices()}
    assert gtts_engine.voices()[0].id == "en"
    assert {"en", "en:co.uk", "fr", "fr:ca", "de", "ja"} <= set(voices)
    assert voices["en:co.uk"].language == "en"


def test_each_part_streams_as_mp3(gtts_engine, google, settings):
    settings.VOICE_GTTS_TIMEOUT = 3.5
    fake = google()
    text = "This sentence is long enough that gTTS must split it into parts. " * 3
    chunks = list(gtts_engine.synthesize(text, voice="en:co.uk"))
    assert len(chunks) == len(fake.requests) > 1
    assert [c.data for c in chunks] == fake.parts  # passed through untouched
    assert {(c.format, c.sample_rate) for c in chunks} == {(audio.MP3, 24000)}
    assert set(fake.timeouts) == {3.5}  # never gTTS's wait-forever default
    assert all("translate.google.co.uk" in r.url for r in fake.requests)
    recording = audio.Recording()
    for chunk in chunks:
        recording.add(chunk)
    assert recording.file_format == audio.MP3
    assert recording.duration == pytest.approx(sum(audio.mp3_duration(p) for p in fake.parts))


def test_slow_speech_for_low_speeds(gtts_engine, google):
    fake = google()
    list(gtts_engine.synthesize("Slowly.", speed=0.6))
    assert "true" in requests.utils.unquote(fake.requests[0].body).lower()


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"error": requests.ConnectionError("no route to host")}, "tts_unreachable", "unreachable"),
        ({"error": requests.Timeout("read timed out")}, "tts_unreachable", "unreachable"),
        ({"status": 429}, "tts_rate_limited", "429"),
        ({"status": 503}, "tts_failed", "503"),
    ],
)
def test_google_failures_are_clear_errors(gtts_engine, google, kwargs, code, words):
    google(**kwargs)
    with pytest.raises(TTSError) as error:
        list(gtts_engine.synthesize("Hello."))
    assert error.value.code == code
    assert words in str(error.value)


def test_nothing_to_say_is_no_audio_not_an_error(gtts_engine, google):
    fake = google()
    assert list(gtts_engine.synthesize("...")) == []
    assert fake.requests == []
