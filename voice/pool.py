"""Where model work runs: a few supervised processes (or threads), fed by a job queue.

The pool knows no engine: it runs the ``Work`` it is given, and its user says
what a failure means to its callers (``Failures``); speech synthesis and
transcription each run in a pool of their own (``voice.tts.service``,
``voice.stt.service``). Each slot runs one job at a time. By default a slot is
a child process holding its loaded models: a job that runs past its time limit
gets its process killed and replaced (``timeout``), a process that crashes is
replaced, and no job can hang a reply, a socket or the server's shutdown. Pools
of threads of this process are the lighter alternative (a hung job then holds
its thread for good; a new thread takes its place).

One dispatcher thread hands the next job (``scheduling.JobQueue``) to the next
free slot and enforces time limits. Results go back through each job's
``deliver`` callable, from whichever thread has them: ``Output`` any number of
times, then ``Done`` or ``Failed``. These messages, and ``Work``, are plain
data: the same objects cross the pipe to and from a process.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing

# Imported first, so that its exit handler (terminating our processes) is registered
# before ours and runs after it: our pools know they are closing by then.
import multiprocessing.util
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from .exceptions import VoiceError
from .scheduling import Cores, Job, JobQueue

logger = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


# --- What goes in and what comes out ------------------------------------------------------
@dataclass(frozen=True)
class Work:
    """What a job does: call the module-level function at dotted path ``function`` with ``args``.

    The slot imports the function where it runs (a child process, or a thread
    here). It returns what the caller gets, piece by piece: an iterable (a
    generator, typically), or None for nothing.
    """

    function: str
    args: tuple = ()

    @classmethod
    def of(cls, function: Callable, *args: Any) -> Work:
        """The work of calling ``function``, a module-level one (a process imports it), with ``args``."""
        return cls(f"{function.__module__}.{function.__qualname__}", args)

    def run(self) -> Iterable[Any]:
        """Call the function, imported where this runs; its outputs."""
        return import_string(self.function)(*self.args) or ()


@dataclass(frozen=True)
class Ready:
    """A process has done its warm-up work and takes jobs."""


@dataclass(frozen=True)
class Output:
    """One piece of what the work produces (an audio chunk, a transcript)."""

    value: Any


@dataclass(frozen=True)
class Done:
    """The work finished."""


@dataclass(frozen=True)
class Failed:
    """The work did not finish: ``error`` says why, in the caller's terms."""

    error: VoiceError

    def __reduce__(self):
        # Across the pipe the error keeps its class, message and attributes, without
        # calling its __init__ (whose arguments need not be its message: ``BadSpeed``).
        return _failed, (type(self.error), str(self.error), vars(self.error))


def _failed(kind: type[VoiceError], detail: str, attributes: dict) -> Failed:
    error = kind.__new__(kind, detail)
    error.__dict__.update(attributes)
    return Failed(error)


Message = Output | Done | Failed


@dataclass(frozen=True)
class Failures:
    """What a job that did not finish becomes for its callers: given by the pool's user, who knows the work."""

    error: type[VoiceError]  # a crash or an unexpected exception; a VoiceError the work raises stays as it is
    timeout_code: str
    timeout_message: str

    def crashed(self, detail: str) -> VoiceError:
        return self.error(detail)

    def timed_out(self, detail: str) -> VoiceError:
        return self.error(detail, code=self.timeout_code, public_message=self.timeout_message)


# --- The work itself (in a child process, or in a thread) --------------------------------
def attempt(work: Work, emit: Callable[[Output], None], failures: Failures) -> Done | Failed:
    """Do ``work``, emitting its outputs; how it ended. Blocking."""
    try:
        for value in work.run():
            emit(Output(value))
        return Done()
    except VoiceError as exc:
        return Failed(exc)
    except Exception as exc:
        logger.exception("%s failed", work.function)
        return Failed(failures.crashed(f"{type(exc).__name__}: {exc}"))


def warm(works: list[Work]) -> None:
    """Run each of ``works`` once (loading models, say), so that the first real job is as fast as the next."""
    for work in works:
        try:
            for _output in work.run():
                pass
        except Exception:
            logger.exception("Warming up with %s failed", work.function)


class SlotPool:
    def __init__(
        self,
        size: int,
        *,
        processes: bool,
        policy: str,
        failures: Failures,
        warm: list[Work] | None = None,
        on_event: Callable[[str, float], None] | None = None,
        name: str = "voice-pool",
        cores: Cores | None = None,
    ) -> None:
        """``warm``: work every slot runs once before it takes jobs (loading its models, say).

        ``failures``: what a job that times out or crashes becomes for its caller.
        ``on_event(name, value)`` hears about "started" (queue wait), "timeout", "restart" and "crash".
        ``cores``: a job starts only once it holds one of them (shared with the local model, by deadline).
        """
        self.queue = JobQueue(policy)
        self.cores = cores
        self.failures = failures
        self.warm = warm or []
        self.name = name
        self.on_event = on_event or (lambda name, value: None)
        slot_class = ProcessSlot if processes else ThreadSlot
        self.slots = [slot_class(self, index) for index in range(max(1, size))]
        self._closed = False
        self._dispatcher = threading.Thread(target=self._dispatch, name=f"{name}-dispatch", daemon=True)
        # At exit, multiprocessing terminates its children: not crashes to recover from.
        atexit.register(self.close)

    def start(self) -> SlotPool:
        for slot in self.slots:
            slot.spawn()
        if self.cores is not None:
            self.cores.attach(self._next_due, self._core_released)
        self._dispatcher.start()
        return self

    def _next_due(self) -> float | None:
        """When the next job that could start now is due (None: none could): read by ``Cores``, unlocked."""
        if not any(slot.ready and slot.job is None for slot in self.slots):
            return None
        return self.queue.earliest_due()

    def _core_released(self) -> None:
        with self.queue.changed:
            self.queue.changed.notify_all()

    def _release_core(self, job: Job) -> None:
        if job.holds_core:
            job.holds_core = False
            self.cores.release()

    def close(self) -> None:
        with self.queue.changed:
            self._closed = True
            self.queue.changed.notify_all()
        for slot in self.slots:
            slot.stop()
        if self.cores is not None:
            self.cores.detach(self._next_due, self._core_released)
        atexit.unregister(self.close)

    def submit(self, job: Job) -> None:
        if self._closed:
            raise self.failures.crashed("The pool is closed.")
        self.queue.put(job)

    @property
    def ready(self) -> bool:
        """Whether every slot has loaded its models."""
        return all(slot.ready for slot in self.slots)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.queue.changed:
            while not self.ready and time.monotonic() < deadline:
                self.queue.changed.wait(0.05)
        return self.ready

    # --- The dispatcher thread -----------------------------------------------------
    def _dispatch(self) -> None:
        with self.queue.changed:
            while not self._closed:
                self._enforce_time_limits()
                idle = next((slot for slot in self.slots if slot.ready and slot.job is None), None)
                job = self._take_job() if idle is not None else None
                if job is None:
                    self.queue.changed.wait(0.05)
                    continue
                job.started_at = time.monotonic()
                self.on_event("started", job.started_at - job.submitted_at)
                idle.job = job
                try:
                    idle.run(job)
                except OSError:
                    # The slot died between jobs; its supervisor fails the job and replaces it.
                    logger.warning("%s slot %s is gone", self.name, idle.index)

    def _take_job(self) -> Job | None:
        """The next job, if it may start now (it holds a core, when the pool shares them)."""
        if self.cores is None:
            return self.queue.pop()
        head = self.queue.peek()
        if head is None or not self.cores.try_acquire(head.due):
            return None
        job = self.queue.pop()
        job.holds_core = True
        return job

    def _enforce_time_limits(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            job = slot.job
            if job is not None and job.started_at is not None and now - job.started_at > job.time_limit:
                logger.warning(
                    "A job (%s) ran past %.1f s: replacing slot %s", job.work.function, job.time_limit, slot.index
                )
                self.on_event("timeout", 1)
                slot.job = None
                self._release_core(job)
                job.deliver(Failed(self.failures.timed_out(f"No result within {job.time_limit:.1f} s.")))
                slot.replace()

    def finished(self, slot, job: Job) -> None:
        """A slot is done with ``job`` and free for the next one."""
        with self.queue.changed:
            if slot.job is job:
                slot.job = None
            self._release_core(job)
            self.queue.changed.notify_all()

    def became_ready(self) -> None:
        with self.queue.changed:
            self.queue.changed.notify_all()


# --- Child processes -----------------------------------------------------------------
def child_main(connection, warm_work: list[Work], failures: Failures) -> None:
    """A model process: do the warm-up work, then job after job until the parent goes."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    try:
        _serve(connection, warm_work, failures)
    except (EOFError, OSError):
        return  # the parent is gone: nothing to say, nobody to say it to


def _serve(connection, warm_work: list[Work], failures: Failures) -> None:
    import django

    django.setup()
    warm(warm_work)
    connection.send(Ready())
    while True:
        work = connection.recv()
        connection.send(attempt(work, connection.send, failures))


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies, even by SIGKILL (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


class ProcessSlot:
    """A child process that does one job at a time, watched by a reader thread here."""

    context = multiprocessing.get_context("spawn")  # fork would copy this process's threads' locks

    def __init__(self, pool: SlotPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.job: Job | None = None
        self.ready = False
        self.process = None
        self.connection = None
        self._reason = "crash"  # why the current process is going away
        self._backoff = 0.5
        self._stopped = False

    def spawn(self) -> None:
        """Start the process, and keep one running (in the background: spawning takes a second or two)."""
        threading.Thread(target=self._supervise, name=f"{self.pool.name}-{self.index}", daemon=True).start()

    def _supervise(self) -> None:
        while not self._stopped:
            started = time.monotonic()
            exitcode = self._run_once()
            if self._stopped:
                return
            self.pool.on_event("restart", 1)
            if self._reason == "timeout":
                continue  # killed on purpose: replace it at once
            self.pool.on_event("crash", 1)
            logger.error("%s process %s died (exit code %s); starting another", self.pool.name, self.index, exitcode)
            # One that dies as soon as it starts must not be restarted in a hot loop.
            self._backoff = 0.5 if time.monotonic() - started > 10 else min(self._backoff * 2, MAX_BACKOFF)
            time.sleep(self._backoff)

    def _run_once(self) -> int | None:
        """Run one process until it ends; fail the job it had. Returns its exit code."""
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=child_main,
            args=(child, self.pool.warm, self.pool.failures),
            name=f"{self.pool.name}-{self.index}",
            daemon=True,
        )
        process.start()
        child.close()
        self.process, self.connection, self._reason = process, parent, "crash"
        self._read(parent)
        process.join(5)
        self.ready = False
        job, self.job = self.job, None
        if job is not None:
            if self._reason == "timeout":
                error = self.pool.failures.timed_out(f"Killed after {job.time_limit:.1f} s.")
            else:
                error = self.pool.failures.crashed(f"The model process died (exit code {process.exitcode}).")
            job.deliver(Failed(error))
            self.pool.finished(self, job)
        return process.exitcode

    def _read(self, connection) -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                return
            except Exception:  # a message that cannot be rebuilt here: the process is of no more use
                logger.exception("%s process %s sent what cannot be read", self.pool.name, self.index)
                self.process.kill()
                return
            if isinstance(message, Ready):
                self.ready = True
                self.pool.became_ready()
                continue
            job = self.job
            if job is None:
                continue  # results of a job given up on (a time limit ran out meanwhile)
            job.deliver(message)
            if isinstance(message, (Done, Failed)):
                self.pool.finished(self, job)

    def run(self, job: Job) -> None:
        self.connection.send(job.work)

    def replace(self) -> None:
        """Kill the process (its job ran out of time); the supervisor starts another."""
        self._reason = "timeout"
        self.ready = False
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        self._stopped = True
        if self.process is not None and self.process.is_alive():
            self.process.kill()


class ThreadSlot:
    """A thread of this process that does one job at a time."""

    def __init__(self, pool: SlotPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.job: Job | None = None
        self.ready = False
        self._inbox: queue.SimpleQueue | None = None

    def spawn(self) -> None:
        self._inbox = queue.SimpleQueue()
        threading.Thread(
            target=self._work, args=(self._inbox,), name=f"{self.pool.name}-{self.index}", daemon=True
        ).start()

    def _work(self, inbox: queue.SimpleQueue) -> None:
        warm(self.pool.warm)
        self.ready = True
        self.pool.became_ready()
        while (job := inbox.get()) is not None:

            def emit(output: Output, job: Job = job) -> None:
                if inbox is self._inbox:  # else given up on: another thread has this slot now
                    job.deliver(output)

            end = attempt(job.work, emit, self.pool.failures)
            if inbox is not self._inbox:
                return
            job.deliver(end)
            self.pool.finished(self, job)

    def run(self, job: Job) -> None:
        self._inbox.put(job)

    def replace(self) -> None:
        """A thread cannot be killed: leave it to its fate, and start another."""
        self.pool.on_event("restart", 1)
        self.ready = False
        self.spawn()

    def stop(self) -> None:
        if self._inbox is not None:
            self._inbox.put(None)
