import io
import wave

import lameenc
import numpy as np
import pytest

from voice import audio
from voice.audio import AudioChunk, AudioFormatError
from voice.tests.engines import tone


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


def sine(hz: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def loudness(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    return float(np.sqrt(np.mean(samples**2)))


def peak_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_resampling_keeps_length_and_pitch():
    pcm = audio.to_pcm16(sine(440, 2.0, 22050))
    out = audio.resample(pcm, 22050, 16000)
    assert abs(len(out) // 2 - 32000) <= 2
    assert peak_hz(out, 16000) == pytest.approx(440, abs=2)
    assert loudness(out) == pytest.approx(loudness(pcm), rel=0.02)


def test_resampling_filters_what_the_new_rate_cannot_hold():
    # 10 kHz is above 16 kHz's Nyquist frequency: it must vanish, not fold back to 6 kHz.
    kept = audio.resample(audio.to_pcm16(sine(7000, 1.0, 22050)), 22050, 16000)
    gone = audio.resample(audio.to_pcm16(sine(10000, 1.0, 22050)), 22050, 16000)
    assert loudness(kept) > 0.3
    assert loudness(gone) < 0.01


def test_channels_are_averaged_to_mono():
    left = (sine(440, 0.5, 16000) * 32767).astype(np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).astype("<i2").tobytes()
    mono = audio.resample(stereo, 16000, 16000, channels=2)
    assert len(mono) == len(stereo) // 2
    assert loudness(mono) == pytest.approx(loudness(left.astype("<i2").tobytes()) / 2, rel=0.01)
    assert audio.resample(b"", 22050, 16000) == b""


@pytest.mark.parametrize(("pcm", "rate", "channels"), [(b"\x00" * 6, 16000, 4), (b"\x00\x00", 0, 1), (b"\x00", 8, 1)])
def test_resampling_refuses_what_it_cannot_read(pcm, rate, channels):
    with pytest.raises(AudioFormatError):
        audio.resample(pcm, rate, 16000, channels=channels)
