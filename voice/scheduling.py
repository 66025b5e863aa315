"""Which job runs next: the one whose result is needed first.

A reply's first segment is due at once; a later one is due when the audio
already sent for that reply will have finished playing (``PlaybackClock``),
less a safety margin. Earliest deadline first lets every new reply start
speaking while replies that are already playing use their slack. First in,
first out (the order of arrival) stays selectable, for comparison
(VOICE_TTS_SCHEDULING).
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# English speech at speed 1: about 14 characters a second (Piper's voices, measured).
CHARS_PER_SECOND = 14.0

DEADLINE = "deadline"
FIFO = "fifo"
POLICIES = (DEADLINE, FIFO)


@dataclass(eq=False)
class Job:
    """One piece of model work (``voice.pool``), and where its results go."""

    work: Any  # what to run: a ``voice.pool.Work``, plain data, to cross to a process
    due: float  # time.monotonic() by which its result is needed
    deliver: Callable[[Any], None]  # called from pool threads with what the pool produces (``voice.pool.Message``)
    time_limit: float = 30.0
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    cancelled: bool = False
    holds_core: bool = False  # it was started with one of the process's ``Cores``

    def cancel(self) -> None:
        """Nobody wants the result any more: skip it if it has not started."""
        self.cancelled = True


class JobQueue:
    """A thread-safe priority queue of jobs: earliest deadline first, or first in, first out."""

    def __init__(self, policy: str = DEADLINE) -> None:
        if policy not in POLICIES:
            raise ValueError(f"Unknown scheduling policy {policy!r}: use one of {', '.join(POLICIES)}.")
        self.policy = policy
        self._heap: list[tuple[float, int, Job]] = []
        self._order = itertools.count()  # ties go to the earlier arrival
        self.changed = threading.Condition()

    def put(self, job: Job) -> None:
        key = job.due if self.policy == DEADLINE else job.submitted_at
        with self.changed:
            heapq.heappush(self._heap, (key, next(self._order), job))
            self.changed.notify_all()

    def pop(self) -> Job | None:
        """The next job to run, or None; call with ``changed`` held."""
        job = self.peek()
        if job is not None:
            heapq.heappop(self._heap)
        return job

    def peek(self) -> Job | None:
        """The job ``pop`` would return, left in the queue; call with ``changed`` held."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][2] if self._heap else None

    def earliest_due(self) -> float | None:
        """The due of the job at the head, read without the lock (a hint for ``Cores``, which must not wait on it)."""
        try:
            return self._heap[0][2].due
        except IndexError:
            return None

    def __len__(self) -> int:
        return sum(not job.cancelled for _key, _order, job in self._heap)


class Cores:
    """This process's CPU, shared by deadline between the model's steps and synthesis jobs.

    Work runs while it holds a core: one step of the local model's batch
    (``voice.responders.batching``) or one synthesis job (``voice.pool``). When
    a core comes free, the earliest due of the waiting work gets it, whichever
    kind it is, so a reply whose listener has 20 s of audio queued gets neither
    a model step nor a synthesis ahead of a new reply's first clause. Running
    work is never pre-empted: that is why speech work comes in short segments.
    """

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self.busy = 0
        self._waiting: list[tuple[float, int]] = []  # (due, ticket) of blocked acquirers, a heap
        self._tickets = itertools.count()
        self._changed = threading.Condition()
        self._queues: list[Callable[[], float | None]] = []  # due of the next job each pool could start now
        self._on_release: list[Callable[[], None]] = []

    def attach(self, next_due: Callable[[], float | None], on_release: Callable[[], None]) -> None:
        """A pool competes for the cores: ``next_due()`` is its next startable job's due (None: none)."""
        with self._changed:
            self._queues.append(next_due)
            self._on_release.append(on_release)

    def detach(self, next_due: Callable[[], float | None], on_release: Callable[[], None]) -> None:
        with self._changed:
            if next_due in self._queues:
                self._queues.remove(next_due)
            if on_release in self._on_release:
                self._on_release.remove(on_release)
            self._changed.notify_all()

    def acquire(self, due: float) -> None:
        """Wait for a core, in deadline order (the model's thread)."""
        with self._changed:
            ticket = (due, next(self._tickets))
            heapq.heappush(self._waiting, ticket)
            try:
                while not (self.busy < self.count and self._waiting[0] == ticket and not self._queued_before(due)):
                    self._changed.wait(0.05)  # a pool's queue changes without telling us
            finally:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
            self.busy += 1

    def try_acquire(self, due: float) -> bool:
        """Take a core now if one is free and no earlier work waits for it (a pool's dispatcher)."""
        with self._changed:
            if self.busy >= self.count or (self._waiting and self._waiting[0][0] < due):
                return False
            self.busy += 1
            return True

    def try_acquire_spare(self) -> bool:
        """Take a core that nothing else wants now (no one waits, no pool has a job to start): a second thread."""
        with self._changed:
            if self.busy >= self.count or self._waiting or any(due() is not None for due in self._queues):
                return False
            self.busy += 1
            return True

    def release(self) -> None:
        with self._changed:
            self.busy = max(0, self.busy - 1)
            self._changed.notify_all()
            listeners = list(self._on_release)
        for listener in listeners:
            listener()

    def _queued_before(self, due: float) -> bool:
        return any((other := next_due()) is not None and other < due for next_due in self._queues)


class PlaybackClock:
    """When a listener's audio will run out, from what was sent and when.

    A client starts playing a chunk when it arrives, or when the audio before
    it ends, whichever is later; a chunk that arrives after the audio before it
    has ended is a stall.
    """

    def __init__(self) -> None:
        self.ends_at: float | None = None  # time.monotonic() when the audio sent so far ends

    def sent(self, seconds: float, at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        self.ends_at = max(self.ends_at or now, now) + seconds

    def due(self, margin: float) -> float:
        """When the next segment's audio is needed: now for the first, else before the audio runs out."""
        now = time.monotonic()
        if self.ends_at is None:
            return now
        return max(now, self.ends_at - margin)


class Demand:
    """How soon a spoken reply needs more text.

    The listener hears the audio already sent (``clock``), then the sentences
    written but not yet spoken. More text is due ``write_ahead`` seconds before
    all of that runs out; before any audio is sent, it is due at once (the
    first clause). The local model reads it to decode first what is needed first.
    """

    def __init__(self, write_ahead: float, chars_per_second: float = CHARS_PER_SECOND) -> None:
        self.clock = PlaybackClock()
        self.write_ahead = write_ahead
        self.chars_per_second = chars_per_second
        self.unspoken_chars = 0

    def written(self, text: str) -> None:
        """A sentence is written and waits to be spoken."""
        self.unspoken_chars += len(text)

    def spoken(self, text: str) -> None:
        """A sentence is being said: from now on ``clock`` counts its audio, not its text."""
        self.unspoken_chars = max(0, self.unspoken_chars - len(text))

    def text_due(self) -> float:
        """time.monotonic() by which the reply needs more text (0.0: now)."""
        if self.clock.ends_at is None:
            return 0.0
        return self.clock.ends_at + self.unspoken_chars / self.chars_per_second - self.write_ahead


# The demand of the reply being produced in this context (set by the reply pipeline, read by responders).
current_demand: contextvars.ContextVar[Demand | None] = contextvars.ContextVar("current_demand", default=None)


def process_cores(count: int) -> Cores | None:
    """The process's one ``Cores`` for ``count`` cores (0: none, work runs as the OS pleases)."""
    global _cores
    if count <= 0:
        return None
    with _cores_lock:
        if _cores is None or _cores.count != count:
            _cores = Cores(count)
        return _cores


_cores: Cores | None = None
_cores_lock = threading.Lock()
