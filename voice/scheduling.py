"""Which job runs next: the one whose result is needed first.

A reply's first segment is due at once; a later one is due when the audio
already sent for that reply will have finished playing (``PlaybackClock``),
less a safety margin. Earliest deadline first lets every new reply start
speaking while replies that are already playing use their slack. First in,
first out (the order of arrival) stays selectable, for comparison
(VOICE_TTS_SCHEDULING).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEADLINE = "deadline"
FIFO = "fifo"
POLICIES = (DEADLINE, FIFO)


@dataclass(eq=False)
class Job:
    """One piece of model work (``voice.pool``), and where its results go."""

    task: tuple  # e.g. ("synthesize", engine, voice, speed, text): plain data, to cross to a process
    due: float  # time.monotonic() by which its result is needed
    deliver: Callable[[tuple], None]  # called from pool threads with what the pool produces
    time_limit: float = 30.0
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    cancelled: bool = False

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
        while self._heap:
            _key, _order, job = heapq.heappop(self._heap)
            if not job.cancelled:
                return job
        return None

    def __len__(self) -> int:
        return sum(not job.cancelled for _key, _order, job in self._heap)


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
