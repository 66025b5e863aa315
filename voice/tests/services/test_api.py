"""The speech API with real clients (requests, websockets, the OpenAI SDK) against a live Daphne."""

import base64
import io
import json
import wave

import pytest
import requests
from websockets.sync.client import connect as ws_connect

from voice import audio
from voice.tests.helpers import assert_is_speech
from voice.tests.servers import DaphneServer, Site

VOICES = "/v1/voice-synthesis/voices"
SYNTHESIZE = "/v1/voice-synthesis/synthesize"


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
