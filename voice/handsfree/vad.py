"""Silero VAD v6 run as audio arrives: one probability of speech per 32 ms window.

faster-whisper ships the model (``assets/silero_vad_v6.onnx``) and runs it on
whole recordings; its ONNX graph takes a batch of windows (512 samples plus
the 64 before them) and the LSTM state, so keeping that state between calls
gives the same probabilities as the batch call, window by window
(docs/handsfree.md, §1: max difference 0.0). One ONNX session per process,
one thread: about 0.1 ms of CPU per window.
"""

from __future__ import annotations

import functools

import numpy as np

WINDOW = 512  # samples at 16 kHz: 32 ms
CONTEXT = 64
STATE_SHAPE = (1, 1, 128)


@functools.cache
def _session():
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session


def prepare() -> None:
    """Load the model now, so that the first window does not wait for it."""
    _session()


class SileroStream:
    """Speech probabilities of a stream of float32 samples at 16 kHz, in whole windows."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far (after a long silence, or a new turn)."""
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def probability(self, window: np.ndarray) -> float:
        """The probability that ``window`` (WINDOW float32 samples) holds speech."""
        row = np.concatenate([self._context, window]).astype(np.float32, copy=False)[np.newaxis, :]
        output, self._h, self._c = _session().run(None, {"input": row, "h": self._h, "c": self._c})
        self._context = window[-CONTEXT:]
        return float(np.asarray(output).reshape(-1)[-1])
