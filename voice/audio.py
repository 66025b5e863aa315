"""Audio encoding, all in memory.

Engines hand us whatever they produce (numpy float32 or int16 arrays, raw
PCM16 bytes, WAV or MP3 bytes). Browsers only play what they can decode, and
raw float32 bytes are the classic failure, so every chunk is normalised here
into one of two wire formats: ``pcm_s16le`` (signed 16-bit little-endian) or
``mp3``. Whole replies are stored as WAV or MP3 files with correct headers.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

PCM_S16LE = "pcm_s16le"
MP3 = "mp3"
WAV = "wav"
WIRE_FORMATS = (PCM_S16LE, MP3)

CONTENT_TYPES = {WAV: "audio/wav", MP3: "audio/mpeg", PCM_S16LE: "audio/L16"}


class AudioFormatError(ValueError):
    """Audio that cannot be interpreted in the format it claims."""


@dataclass(frozen=True)
class AudioChunk:
    """A piece of audio as produced by an engine or sent on the wire.

    ``data`` may be a numpy array (float in [-1, 1] or int16) or bytes. When
    ``format`` is None the data is PCM samples; ``normalize`` turns any chunk
    into bytes in one of ``WIRE_FORMATS``.
    """

    data: bytes | np.ndarray
    sample_rate: int
    format: str | None = None
    channels: int = 1

    @property
    def duration(self) -> float:
        """Length in seconds (only for normalised chunks)."""
        if self.format == PCM_S16LE:
            return pcm_duration(len(self.data), self.sample_rate, self.channels)
        if self.format == MP3:
            return mp3_duration(self.data)
        if self.format == WAV:
            return read_wav(self.data).duration
        raise AudioFormatError(f"Duration of a {self.format!r} chunk is unknown; normalize it first.")


def to_pcm16(samples: bytes | np.ndarray) -> bytes:
    """PCM16 little-endian bytes from float samples in [-1, 1], int16 samples or PCM16 bytes."""
    if isinstance(samples, (bytes, bytearray, memoryview)):
        data = bytes(samples)
        if len(data) % 2:
            raise AudioFormatError("PCM16 data must have an even number of bytes.")
        return data
    array = np.asarray(samples)
    if array.dtype == np.int16:
        return array.astype("<i2", copy=False).tobytes()
    if np.issubdtype(array.dtype, np.floating):
        # Clip first: a float sample of 1.2 would otherwise wrap to a loud click.
        clipped = np.clip(np.nan_to_num(array), -1.0, 1.0)
        return (clipped * 32767.0).round().astype("<i2").tobytes()
    raise AudioFormatError(f"Unsupported sample type {array.dtype}; use float32 or int16.")


def wav_bytes(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """A complete WAV file (RIFF header included) around PCM16 data."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def read_wav(data: bytes) -> AudioChunk:
    """The PCM16 samples of a WAV file, as a normalised chunk."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise AudioFormatError("Only 16-bit WAV is supported.")
            return AudioChunk(
                data=wav.readframes(wav.getnframes()),
                sample_rate=wav.getframerate(),
                format=PCM_S16LE,
                channels=wav.getnchannels(),
            )
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"Not a valid WAV file: {exc}") from exc


def pcm_duration(n_bytes: int, sample_rate: int, channels: int = 1) -> float:
    return n_bytes / (2 * channels * sample_rate)


def resample(pcm: bytes, sample_rate: int, rate: int, channels: int = 1) -> bytes:
    """Mono PCM16 at ``rate`` from PCM16 at ``sample_rate`` with ``channels`` interleaved channels.

    Channels are averaged. The rate is converted by FFmpeg's libswresample
    (through PyAV, which faster-whisper needs anyway): it low-passes first,
    where plain interpolation would fold everything above the new Nyquist
    frequency back into the speech band.
    """
    data = to_pcm16(pcm)
    if channels < 1 or sample_rate <= 0 or rate <= 0:
        raise AudioFormatError(f"Cannot resample {channels} channels from {sample_rate} Hz to {rate} Hz.")
    if len(data) % (2 * channels):
        raise AudioFormatError(f"PCM16 data with {channels} channels must hold whole frames.")
    samples = np.frombuffer(data, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).round().astype("<i2")
    if sample_rate == rate or not samples.size:
        return samples.tobytes()
    import av

    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    # Resampling with None flushes the filter's delay line: the tail of the audio.
    frames = resampler.resample(frame) + resampler.resample(None)
    return b"".join(out.to_ndarray().astype("<i2").tobytes() for out in frames)


def normalize(chunk: AudioChunk) -> AudioChunk:
    """The chunk in a wire format, with bytes data."""
    if chunk.format in (None, PCM_S16LE):
        return replace(chunk, data=to_pcm16(chunk.data), format=PCM_S16LE)
    if chunk.format == WAV:
        return read_wav(bytes(chunk.data))
    if chunk.format == MP3:
        data = bytes(chunk.data)
        frames = list(_mp3_frames(data))
        if not frames:
            raise AudioFormatError("No MP3 frames found.")
        return replace(chunk, data=data, sample_rate=frames[0][1])
    raise AudioFormatError(f"Unknown audio format {chunk.format!r}.")


def split(chunk: AudioChunk, max_bytes: int) -> Iterator[AudioChunk]:
    """Normalised chunk cut into pieces of at most ``max_bytes``.

    Keeps every channel-layer message well under its 1 MB limit. PCM is cut on
    frame boundaries; MP3 on MP3 frame boundaries.
    """
    data = chunk.data
    if len(data) <= max_bytes:
        yield chunk
        return
    if chunk.format == PCM_S16LE:
        step = max(2 * chunk.channels, max_bytes - max_bytes % (2 * chunk.channels))
        for start in range(0, len(data), step):
            yield replace(chunk, data=data[start : start + step])
        return
    start = 0
    end = 0
    for offset, _rate, length, _samples in _mp3_frames(data):
        if offset + length - start > max_bytes and end > start:
            yield replace(chunk, data=data[start:end])
            start = end
        end = offset + length
    yield replace(chunk, data=data[start:])


class Recording:
    """Collects the chunks of one reply and renders them as a single file."""

    def __init__(self) -> None:
        self.chunks: list[AudioChunk] = []

    def add(self, chunk: AudioChunk) -> None:
        if self.chunks:
            first = self.chunks[0]
            if chunk.format != first.format:
                raise AudioFormatError("All chunks of one reply must share a format.")
            if chunk.format == PCM_S16LE and (chunk.sample_rate, chunk.channels) != (
                first.sample_rate,
                first.channels,
            ):
                raise AudioFormatError("All PCM chunks of one reply must share rate and channels.")
        self.chunks.append(chunk)

    def __bool__(self) -> bool:
        return bool(self.chunks)

    @property
    def duration(self) -> float:
        return sum(chunk.duration for chunk in self.chunks)

    @property
    def file_format(self) -> str:
        """``wav`` for PCM replies, ``mp3`` for MP3 ones."""
        return MP3 if self.chunks and self.chunks[0].format == MP3 else WAV

    def file_bytes(self) -> bytes:
        if not self.chunks:
            raise AudioFormatError("Nothing was recorded.")
        data = b"".join(chunk.data for chunk in self.chunks)
        if self.file_format == MP3:
            # MP3 frames are self-delimiting: parts concatenate into one stream.
            return data
        first = self.chunks[0]
        return wav_bytes(data, first.sample_rate, first.channels)


def streaming_wav_header(sample_rate: int, channels: int = 1) -> bytes:
    """A WAV header for PCM16 of unknown length (sizes at their maximum, as streaming servers do)."""
    byte_rate = sample_rate * channels * 2
    return (
        b"RIFF" + (0xFFFFFFFF).to_bytes(4, "little") + b"WAVE"
        + b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + channels.to_bytes(2, "little")
        + sample_rate.to_bytes(4, "little") + byte_rate.to_bytes(4, "little")
        + (channels * 2).to_bytes(2, "little") + (16).to_bytes(2, "little")
        + b"data" + (0xFFFFFFFF).to_bytes(4, "little")
    )  # fmt: skip


class Mp3Encoder:
    """PCM16 in, MP3 out, a piece at a time (LAME, through lameenc)."""

    def __init__(self, sample_rate: int, channels: int = 1, kbps: int = 64) -> None:
        import lameenc

        self._encoder = lameenc.Encoder()
        self._encoder.set_bit_rate(kbps)
        self._encoder.set_in_sample_rate(sample_rate)
        self._encoder.set_out_sample_rate(sample_rate)
        self._encoder.set_channels(channels)
        self._encoder.set_quality(5)

    def encode(self, pcm: bytes) -> bytes:
        return bytes(self._encoder.encode(pcm))

    def flush(self) -> bytes:
        return bytes(self._encoder.flush())


# --- MP3 frame headers (MPEG-1/2/2.5 Layer III) ------------------------------
_MP3_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_SAMPLE_RATES = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}


def _skip_id3(data: bytes) -> int:
    if data[:3] == b"ID3" and len(data) >= 10:
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        return 10 + size
    return 0


def _mp3_frames(data: bytes) -> Iterable[tuple[int, int, int, int]]:
    """(offset, sample_rate, length, samples) of each Layer III frame."""
    offset = _skip_id3(data)
    while offset + 4 <= len(data):
        header = int.from_bytes(data[offset : offset + 4], "big")
        if header >> 21 != 0x7FF:
            if data[offset : offset + 3] == b"TAG":  # trailing ID3v1 tag
                return
            raise AudioFormatError(f"Bad MP3 frame sync at byte {offset}.")
        version_bits = (header >> 19) & 0b11
        layer_bits = (header >> 17) & 0b11
        bitrate_index = (header >> 12) & 0b1111
        rate_index = (header >> 10) & 0b11
        padding = (header >> 9) & 1
        if version_bits == 0b01 or layer_bits != 0b01 or bitrate_index in (0, 15) or rate_index == 3:
            raise AudioFormatError(f"Unsupported MP3 frame at byte {offset}.")
        version = {0b11: 1, 0b10: 2, 0b00: 25}[version_bits]
        bitrate = _MP3_BITRATES[1 if version == 1 else 2][bitrate_index] * 1000
        sample_rate = _MP3_SAMPLE_RATES[version][rate_index]
        coefficient, samples = (144, 1152) if version == 1 else (72, 576)
        length = coefficient * bitrate // sample_rate + padding
        yield offset, sample_rate, length, samples
        offset += length


def mp3_duration(data: bytes) -> float:
    """Length in seconds of an MP3 stream, from its frame headers."""
    return sum(samples / rate for _offset, rate, _length, samples in _mp3_frames(data))
