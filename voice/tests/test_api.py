"""The speech API: auth, validation and tokens in process; real clients against a live Daphne."""

import base64
import io
import json
import wave
from datetime import timedelta

import pytest
import requests
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.utils import timezone
from websockets.sync.client import connect as ws_connect

from voice import audio
from voice.models import ApiKey, SpeechRequest, SpeechToken
from voice.tests.servers import DaphneServer, Site
from voiceproject.asgi import application

from .conftest import assert_is_speech

VOICES = "/v1/voice-synthesis/voices"
SYNTHESIZE = "/v1/voice-synthesis/synthesize"
SPEECH = "/v1/audio/speech"


@pytest.fixture
def key(user):
    _key, plain = ApiKey.issue(user, "tests")
    return plain


def bearer(plain):
    return {"HTTP_AUTHORIZATION": f"Bearer {plain}"}


# --- Access ------------------------------------------------------------------------
@pytest.mark.django_db
def test_credentials_are_required_and_checked(client, user, key):
    assert client.get(VOICES).json()["error"]["code"] == "missing_credentials"
    assert client.get(VOICES).status_code == 401
    assert client.get(VOICES, **bearer("vk_nope_nope")).status_code == 401
    assert client.get(VOICES, **bearer(key)).status_code == 200
    ApiKey.objects.update(revoked_at=timezone.now())
    assert client.get(VOICES, **bearer(key)).status_code == 401  # at once


@pytest.mark.django_db
def test_browser_sessions_work_but_need_csrf_for_posts(user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get(VOICES).status_code == 200
    body = json.dumps({"text": "Hi.", "voice_id": "en_US-joe-medium"})
    response = browser.post(SYNTHESIZE, body, content_type="application/json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "csrf_failed"


@pytest.mark.django_db
def test_anonymous_use_is_off_unless_allowed(client, settings):
    assert client.get(VOICES).status_code == 401
    settings.VOICE_API_ALLOW_ANONYMOUS = True
    voices = client.get(VOICES).json()
    assert next(iter(voices)) == "en_US-joe-medium"
    assert voices["en_US-joe-medium"] == {
        "name": "en US joe medium",
        "language": "en-US",
        "engine": "piper",
        "sample_rate": 22050,
    }


@pytest.mark.django_db
def test_rate_limit_per_key(client, key, settings):
    from django.core.cache import cache

    cache.clear()
    settings.VOICE_API_RATE_LIMIT = 2
    assert [client.get(VOICES, **bearer(key)).status_code for _ in range(3)] == [200, 200, 429]
    response = client.post(SPEECH, {"input": "Hi."}, content_type="application/json", **bearer(key))
    assert response.status_code == 429 and response.json()["error"]["type"] == "rate_limit_error"
    cache.clear()


@pytest.mark.django_db
def test_create_api_key_prints_the_key_last(user, capsys):
    call_command("create_api_key", user.username, "--name", "kiosk")
    plain = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiKey.authenticate(plain).user == user
    assert ApiKey.objects.get().hashed != plain and plain not in ApiKey.objects.get().hashed
    with pytest.raises(Exception, match="No user"):
        call_command("create_api_key", "nobody")


@pytest.mark.django_db
def test_admin_shows_a_new_key_once(admin_client, user):
    response = admin_client.post(
        "/admin/voice/apikey/add/", {"user": user.pk, "name": "from admin", "revoked_at": ""}, follow=True
    )
    shown = [str(m) for m in response.context["messages"]]
    plain = shown[0].rsplit(" ", 1)[-1]
    assert ApiKey.authenticate(plain).name == "from admin"


# --- Validation ----------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "bad_json"),
        ('["list"]', "bad_json"),
        ('{"text": "Hi.", "voice_id": "nope"}', "unknown_voice"),
        ('{"text": "  ", "voice_id": "en_US-joe-medium"}', "empty_text"),
        (json.dumps({"text": "x" * 2001}), "text_too_long"),
        ('{"text": "Hi.", "speed": 5}', "bad_speed"),
    ],
)
def test_bad_synthesis_requests_are_400_with_a_reason(client, key, body, code):
    response = client.post(SYNTHESIZE, body, content_type="application/json", **bearer(key))
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert not SpeechToken.objects.exists()


@pytest.mark.django_db
def test_unsupported_formats_get_openai_errors(client, key):
    response = client.post(
        SPEECH,
        {"input": "Hi.", "voice": "alloy", "response_format": "opus"},
        content_type="application/json",
        **bearer(key),
    )
    error = response.json()["error"]
    assert response.status_code == 400
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "response_format",
        "unsupported_response_format",
    )


# --- Tokens ----------------------------------------------------------------------------
async def read_socket(path):
    communicator = WebsocketCommunicator(application, path)  # no Origin, no cookie: like a kiosk
    connected, _ = await communicator.connect()
    assert connected
    messages = []
    while True:
        frame = await communicator.receive_output(20)
        if frame["type"] == "websocket.close":
            return messages, frame.get("code", 1000)
        messages.append(json.loads(frame["text"]))


@pytest.mark.django_db(transaction=True)
async def test_a_token_streams_once_and_then_never_again(user):
    token = await SpeechToken.objects.acreate(
        token="once",
        user=user,
        text="Hello there. Second sentence.",
        voice="en_US-joe-medium",
        expires_at=timezone.now() + timedelta(seconds=60),
    )
    messages, code = await read_socket(f"/v1/ws/{token.token}")
    assert code == 1000
    assert messages[0]["event"]["type"] == "started" and messages[-1]["event"]["type"] == "finished"
    pcm = b"".join(base64.b64decode(m["data"].removeprefix("data:audio/pcm;base64,")) for m in messages[1:-1])
    assert all(m["data"].startswith("data:audio/pcm;base64,") for m in messages[1:-1])
    assert messages[-1]["event"]["duration_ms"] == round(len(pcm) / 2 / 22.05)
    assert_is_speech(pcm, 22050, 1, 6)
    record = await SpeechRequest.objects.aget()
    assert (record.api, record.characters, record.user_id) == ("vivoka", 29, user.pk)

    again, code = await read_socket(f"/v1/ws/{token.token}")
    assert again == [{"error": {"code": "invalid_token", "message": "Unknown, used or expired token."}}]
    assert code == 4401


@pytest.mark.django_db(transaction=True)
async def test_expired_and_unknown_tokens_are_refused(user):
    await SpeechToken.objects.acreate(
        token="stale",
        user=user,
        text="Too late.",
        voice="en_US-joe-medium",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    for token in ("stale", "never-issued"):
        messages, code = await read_socket(f"/v1/ws/{token}")
        assert messages[0]["error"]["code"] == "invalid_token" and code == 4401
    assert await sync_to_async(SpeechToken.objects.get)(token="stale") is not None


# --- Real clients, live server -------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("api-site")).setup()
    server = DaphneServer(site).start()
    plain = site.manage("create_api_key", "demo").strip().splitlines()[-1]
    yield site, server, plain
    server.stop()
    site.destroy()


def test_vivoka_client_flow_over_real_sockets(live):
    site, server, plain = live
    headers = {"Authorization": f"Bearer {plain}"}
    voices = requests.get(f"{server.url}{VOICES}", headers=headers, timeout=10).json()
    voice_id = next(iter(voices))  # what existing clients do
    answer = requests.post(
        f"{server.url}{SYNTHESIZE}",
        json={"text": "A kiosk asks. The server answers.", "voice_id": voice_id},
        headers=headers,
        timeout=10,
    ).json()
    assert answer["sample_rate"] == voices[voice_id]["sample_rate"] == 22050
    raw = bytearray()
    with ws_connect(f"ws://127.0.0.1:{server.port}/v1/ws/{answer['token']}", open_timeout=10) as socket:
        for message in socket:  # ends when the server closes normally
            payload = json.loads(message)
            if "data" in payload:
                raw += base64.b64decode(payload["data"].split(",", 1)[1])
            elif payload.get("event", {}).get("type") == "finished":
                finished = payload["event"]
    assert finished["duration_ms"] == round(len(raw) / 2 / 22.05)
    assert_is_speech(bytes(raw), 22050, 1.5, 8)
    recorded = site.shell("from voice.models import SpeechRequest as R; print(R.objects.filter(api='vivoka').count())")
    assert recorded == "1"


@pytest.mark.parametrize("response_format", ["wav", "pcm", "mp3"])
def test_openai_sdk_streams_speech(live, tmp_path, response_format):
    from openai import OpenAI

    _site, server, plain = live
    client = OpenAI(api_key=plain, base_url=f"{server.url}/v1")
    out = tmp_path / f"speech.{response_format}"
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input="The official client works. It streams to a file.",
        response_format=response_format,
    ) as response:
        assert (
            response.headers["content-type"]
            == {"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg"}[response_format]
        )
        response.stream_to_file(out)
    data = out.read_bytes()
    if response_format == "wav":
        with wave.open(io.BytesIO(data)) as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (22050, 2, 1)
            pcm = wav.readframes(wav.getnframes())
        assert_is_speech(pcm, 22050, 1.5, 8)
    elif response_format == "pcm":
        assert_is_speech(data, 22050, 1.5, 8)
    else:
        # Real MP3 frames from a real encoder; no MP3 decoder here, so check by frame headers.
        assert 1.5 < audio.mp3_duration(data) < 8
        chunk = audio.normalize(audio.AudioChunk(data=data, sample_rate=0, format=audio.MP3))
        assert chunk.sample_rate == 22050


def test_openai_sdk_errors(live):
    from openai import AuthenticationError, BadRequestError, OpenAI

    _site, server, plain = live
    with pytest.raises(BadRequestError, match="response_format"):
        OpenAI(api_key=plain, base_url=f"{server.url}/v1").audio.speech.create(
            model="tts-1", voice="alloy", input="Hi.", response_format="flac"
        )
    with pytest.raises(AuthenticationError):
        OpenAI(api_key="vk_wrong_key", base_url=f"{server.url}/v1").audio.speech.create(
            model="tts-1", voice="alloy", input="Hi."
        )
