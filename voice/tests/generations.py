"""Driving the local model's engine (``voice.responders.batching``) directly, from tests."""

import contextlib
import threading
import time

from voice.responders.batching import BatchEngine, Generation

WAIT = 60  # seconds: a backstop, never waited out when things work


class Reply:
    """Collects what the engine hands one generation, from its thread."""

    def __init__(
        self,
        text: str,
        *,
        max_tokens: int = 24,
        system: str = "Answer in one short sentence.",
        due=None,
        ignore_end: bool = False,
        messages: list[dict] | None = None,
    ):
        self.pieces: list[str] = []
        self.queued: list[tuple[int, float | None]] = []
        self.steps_at_text: list[int] = []
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.engine: BatchEngine | None = None
        self.generation = Generation(
            messages=messages or [{"role": "system", "content": system}, {"role": "user", "content": text}],
            max_tokens=max_tokens,
            temperature=0.0,
            on_text=self._text,
            on_end=self._end,
            on_queued=lambda position, wait: self.queued.append((position, wait)),
            due=due or (lambda: 0.0),
            ignore_end=ignore_end,
        )

    def _text(self, text: str) -> None:
        self.pieces.append(text)
        self.steps_at_text.append(self.engine.steps if self.engine else 0)

    def _end(self, error) -> None:
        self.error = error
        self.ended.set()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def submit(self, engine: BatchEngine) -> "Reply":
        self.engine = engine
        engine.submit(self.generation)
        return self

    def wait(self) -> "Reply":
        assert self.ended.wait(WAIT), "the reply never ended"
        return self


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@contextlib.contextmanager
def started_engine(**options):
    """The bundled model in a small engine of its own (two short sequences unless told), loaded; closed after.

    ``engine.events_seen`` lists the (name, value) events it reported.
    """
    from voice.responders.local import bundled_model_path

    settings = {"sequences": 2, "context": 1024, "threads": 1, "history_tokens": 200} | options
    events: list[tuple[str, float]] = []
    engine = BatchEngine(str(bundled_model_path()), events=lambda *event: events.append(event), **settings).start()
    engine.events_seen = events
    try:
        engine.wait_loaded()
        yield engine
    finally:
        engine.close()
