"""Speech to text with real audio: our own Piper voice, heard by the bundled Whisper model."""

import numpy as np
import pytest

from bench.stt import spoken, word_error_rate, words
from voice import audio
from voice.stt import SAMPLE_RATE, NoSpeech, TranscriberUnavailable, UnknownLanguage, get_transcriber, whisper
from voice.stt.session import Utterance
from voice.tests.helpers import noise, run_command, silence
from voice.tts import get_engine

# Piper's voice varies a little from one synthesis to the next, and Whisper
# base stumbles on names ("Paris" is sometimes "pairs"): sentences here are
# ones it heard right in every trial.
QUESTION = "What time does the library close on Saturday?"


@pytest.fixture(scope="module")
def stt():
    """The Whisper transcriber, its model loaded once for the whole module."""
    transcriber = get_transcriber("whisper")
    transcriber.prepare()
    return transcriber


@pytest.fixture(scope="module")
def question() -> bytes:
    return spoken(QUESTION)


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


class EncoderSpy:
    """Stands in for the CTranslate2 model, noting how many mel frames each encoder pass was given."""

    def __init__(self, model) -> None:
        self.model = model
        self.frames: list[int] = []

    def encode(self, features, *args, **kwargs):
        self.frames.append(features.shape[-1])
        return self.model.encode(features, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


@pytest.fixture
def encoder(stt, monkeypatch) -> EncoderSpy:
    spy = EncoderSpy(stt.model().model)
    monkeypatch.setattr(stt.model(), "model", spy)
    return spy


def test_short_speech_is_encoded_in_a_short_window(stt, encoder):
    sentence = "Please turn off the lights in the kitchen."  # about 2 s
    transcript = whisper.WhisperTranscriber(min_window_seconds=10).transcribe(spoken(sentence), SAMPLE_RATE)
    assert word_error_rate([sentence], [transcript.text]) <= 1 / len(sentence.split()), transcript.text
    assert encoder.frames == [1000]  # 10 s, not Whisper's 30
    [segment] = transcript.segments
    assert 0 <= segment.start < segment.end <= transcript.duration + 0.05


def test_a_30_second_minimum_window_is_the_full_window(stt, encoder, question):
    transcript = whisper.WhisperTranscriber(min_window_seconds=30).transcribe(question, SAMPLE_RATE)
    assert words(transcript.text) == words(QUESTION)
    assert encoder.frames == [3000]


LOOP = "Set a timer for the pasta. Set a timer for the pasta. Set a timer for the"


@pytest.mark.parametrize("short_text", [LOOP, None], ids=["loop", "failed"])
def test_a_short_pass_that_loops_is_redone_in_the_full_window(stt, encoder, question, monkeypatch, short_text):
    transcriber = whisper.WhisperTranscriber(min_window_seconds=10)
    decode_short = transcriber._decode_short

    def looping(*args):
        decode_short(*args)  # the real short pass, its text replaced
        return short_text

    monkeypatch.setattr(transcriber, "_decode_short", looping)
    transcript = transcriber.transcribe(question, SAMPLE_RATE)
    assert words(transcript.text) == words(QUESTION)
    assert encoder.frames == [1000, 3000]


def test_a_short_pass_out_of_tokens_is_redone_in_the_full_window(stt, encoder, question, monkeypatch):
    # A budget the question cannot fit in: a looping decode stops there too.
    monkeypatch.setattr(whisper, "TOKENS_PER_SECOND", 0)
    monkeypatch.setattr(whisper, "SPARE_TOKENS", 4)
    transcript = whisper.WhisperTranscriber(min_window_seconds=10).transcribe(question, SAMPLE_RATE)
    assert words(transcript.text) == words(QUESTION)
    assert encoder.frames == [1000, 3000]


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


def test_the_language_can_be_detected(stt, question, settings, encoder):
    settings.VOICE_STT_LANGUAGE = ""
    assert stt.transcribe(question, SAMPLE_RATE).language == "en"
    assert set(encoder.frames) == {3000}  # detection takes faster-whisper's own 30 s path


def test_an_unknown_language_is_a_clear_error(stt, question):
    with pytest.raises(UnknownLanguage, match="'xx'") as error:
        stt.transcribe(question, SAMPLE_RATE, language="xx")
    assert error.value.code == "unknown_language"


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


def test_whisper_is_the_default_and_loads_once(settings, stt):
    settings.VOICE_STT_ENGINE = "whisper"
    assert get_transcriber() is stt
    assert whisper.WhisperTranscriber().model() is stt.model()


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


def test_an_utterance_of_silence_is_no_speech(stt):
    utterance = Utterance(stt)
    utterance.add(silence(1.5))
    assert utterance.partial().text == ""
    with pytest.raises(NoSpeech) as error:
        utterance.final()
    assert (error.value.code, error.value.public_message) == ("no_speech", "I didn't catch that.")


def test_transcribe_converts_a_stereo_22_khz_wav(stt, tmp_path):
    chunks = list(get_engine("piper").synthesize(QUESTION))
    rate = chunks[0].sample_rate
    mono = np.frombuffer(b"".join(chunk.data for chunk in chunks), dtype="<i2")
    stereo = np.stack([mono, mono // 2], axis=1).astype("<i2").tobytes()
    path = tmp_path / "question.wav"
    path.write_bytes(audio.wav_bytes(stereo, rate, channels=2))
    report = run_command("transcribe", str(path))
    assert words(report.splitlines()[0]) == words(QUESTION)
    assert f"duration:         {len(mono) / rate:.2f} s (22050 Hz, 2 channels)" in report
    assert "language:         en" in report
    assert all(label in report for label in ("model load:", "transcription:", "real-time factor:"))
