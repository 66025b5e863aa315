import io
import wave

import lameenc
import numpy as np
import pytest

from voice import audio
from voice.audio import AudioChunk, AudioFormatError

from .engines import tone


def mp3_of(seconds: float, rate: int = 24000) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(32)
    encoder.set_in_sample_rate(rate)
    encoder.set_out_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(7)
    pcm = audio.to_pcm16(tone(seconds, rate))
    return bytes(encoder.encode(pcm) + encoder.flush())


def test_float32_becomes_pcm16_with_clipping():
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0, np.nan], dtype=np.float32)
    pcm = np.frombuffer(audio.to_pcm16(samples), dtype="<i2")
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32767, 32767, -32767, 0]


def test_int16_and_bytes_pass_through():
    samples = np.array([1, -2, 32767, -32768], dtype=np.int16)
    assert audio.to_pcm16(samples) == samples.astype("<i2").tobytes()
    assert audio.to_pcm16(b"\x01\x00\xff\xff") == b"\x01\x00\xff\xff"


@pytest.mark.parametrize("bad", [b"\x01\x02\x03", np.array([1, 2], dtype=np.int32)])
def test_unusable_samples_are_refused(bad):
    with pytest.raises(AudioFormatError):
        audio.to_pcm16(bad)


@pytest.mark.parametrize("samples", [tone(0.5), (tone(0.5) * 32767).astype(np.int16)])
def test_normalised_chunk_makes_a_valid_wav(samples):
    chunk = audio.normalize(AudioChunk(data=samples, sample_rate=16000))
    assert chunk.format == audio.PCM_S16LE
    assert chunk.duration == pytest.approx(0.5)
    recording = audio.Recording()
    recording.add(chunk)
    recording.add(chunk)
    with wave.open(io.BytesIO(recording.file_bytes())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.getnframes() == 16000
        decoded = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert np.abs(decoded).max() > 16000  # the tone, not silence or noise
    assert recording.duration == pytest.approx(1.0)
    assert recording.file_format == audio.WAV


def test_wav_chunks_are_unpacked_to_pcm():
    wav = audio.wav_bytes(audio.to_pcm16(tone(0.25, 8000)), 8000)
    chunk = audio.normalize(AudioChunk(data=wav, sample_rate=0, format=audio.WAV))
    assert (chunk.format, chunk.sample_rate) == (audio.PCM_S16LE, 8000)
    assert chunk.duration == pytest.approx(0.25)
    with pytest.raises(AudioFormatError):
        audio.normalize(AudioChunk(data=b"RIFF nonsense", sample_rate=0, format=audio.WAV))


def test_mp3_duration_and_rate_come_from_frame_headers():
    data = mp3_of(2.0)
    chunk = audio.normalize(AudioChunk(data=data, sample_rate=0, format=audio.MP3))
    assert chunk.sample_rate == 24000
    # The encoder pads by up to a couple of frames.
    assert 2.0 <= chunk.duration <= 2.2
    with pytest.raises(AudioFormatError):
        audio.normalize(AudioChunk(data=b"\x00" * 100, sample_rate=0, format=audio.MP3))


def test_split_respects_sample_and_frame_boundaries():
    pcm = audio.normalize(AudioChunk(data=tone(1.0), sample_rate=16000))
    pieces = list(audio.split(pcm, 10001))
    assert all(len(p.data) <= 10001 and len(p.data) % 2 == 0 for p in pieces)
    assert b"".join(p.data for p in pieces) == pcm.data

    mp3 = audio.normalize(AudioChunk(data=mp3_of(3.0), sample_rate=0, format=audio.MP3))
    pieces = list(audio.split(mp3, 2000))
    assert len(pieces) > 1 and all(len(p.data) <= 2000 for p in pieces)
    assert b"".join(p.data for p in pieces) == mp3.data
    assert sum(p.duration for p in pieces) == pytest.approx(mp3.duration)


def test_a_recording_refuses_mixed_audio():
    recording = audio.Recording()
    recording.add(audio.normalize(AudioChunk(data=tone(0.1), sample_rate=16000)))
    with pytest.raises(AudioFormatError):
        recording.add(audio.normalize(AudioChunk(data=tone(0.1, 8000), sample_rate=8000)))
    with pytest.raises(AudioFormatError):
        recording.add(audio.normalize(AudioChunk(data=mp3_of(0.5), sample_rate=0, format=audio.MP3)))
