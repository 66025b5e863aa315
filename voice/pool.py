"""Where model work runs: a few supervised processes (or threads), fed by a job queue.

Speech synthesis and transcription both run here, each in a pool of its own
(``voice.tts.service``, ``voice.stt.service``). Each slot runs one job at a
time. By default a slot is a child process holding its loaded models: a job
that runs past its time limit gets its process killed and replaced
(``timeout``), a process that crashes is replaced, and no job can hang a reply,
a socket or the server's shutdown. Pools of threads of this process are the
lighter alternative (a hung job then holds its thread for good; a new thread
takes its place).

One dispatcher thread hands the next job (``scheduling.JobQueue``) to the next
free slot and enforces time limits. Results go back through each job's
``deliver`` callable, from whichever thread has them: ``("chunk", AudioChunk)``
any number of times, then ``("result", value)`` or nothing, then ``("done",)``;
or ``("error", VoiceError)``.

A job's ``task`` is a plain tuple, so that it can cross to a process:
``("synthesize", engine, voice, speed, text)`` or ``("transcribe", engine,
pcm, language)``.
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
from collections.abc import Callable

from .audio import AudioChunk
from .exceptions import STTError, TTSError, VoiceError
from .scheduling import Cores, Job, JobQueue

logger = logging.getLogger(__name__)

WARM_TEXT = "Hello."
MAX_BACKOFF = 30.0


class JobTimeout(VoiceError):
    """A job ran past its time limit; its process was replaced."""


class SlotCrashed(VoiceError):
    """The process running a job died."""


def failure(task: tuple, kind: type[VoiceError], detail: str) -> VoiceError:
    """The error to report for a task that never finished, in the terms of its kind of work."""
    if task[0] == "synthesize":
        if kind is JobTimeout:
            return TTSError(
                detail, code="tts_timeout", public_message="Speech took too long; the reply continues as text."
            )
        return TTSError(detail)
    if kind is JobTimeout:
        return STTError(detail, code="stt_timeout", public_message="Listening took too long; please try again.")
    return STTError(detail)


# --- The work itself (in a child process, or in a thread) --------------------------------
def perform(task: tuple, emit: Callable[[tuple], None]) -> None:
    """Do one task, emitting ("chunk", AudioChunk) pieces and a final ("result", value) if it has one. Blocking."""
    kind = task[0]
    if kind == "synthesize":
        from .tts import get_engine

        _kind, engine, voice, speed, text = task
        for chunk in get_engine(engine).synthesize(text, voice, speed):
            emit(("chunk", chunk))
    elif kind == "transcribe":
        from .stt import SAMPLE_RATE, get_transcriber

        _kind, engine, pcm, language = task
        emit(("result", get_transcriber(engine).transcribe(pcm, SAMPLE_RATE, language)))
    else:
        raise ValueError(f"Unknown task {kind!r}")


def warm(tasks: list[tuple], full: bool) -> None:
    """Load what ``tasks`` need; with ``full``, run each once too (so the first real job is as fast as the next)."""
    for task in tasks:
        try:
            if task[0] == "synthesize":
                from .tts import get_engine

                engine = get_engine(task[1])
                voice = engine.prepare(task[2]).id
                if full:
                    for _chunk in engine.synthesize(WARM_TEXT, voice):
                        pass
            elif task[0] == "transcribe":
                from .stt import get_transcriber

                get_transcriber(task[1]).prepare()
        except Exception:
            logger.exception("Warming up %s failed", task)


class SlotPool:
    def __init__(
        self,
        size: int,
        *,
        processes: bool,
        policy: str,
        warm: list[tuple] | None = None,
        on_event: Callable[[str, float], None] | None = None,
        name: str = "voice-pool",
        cores: Cores | None = None,
    ) -> None:
        """``warm``: tasks every slot loads (and runs once) before it takes jobs, e.g. ("synthesize", "piper", None).

        ``on_event(name, value)`` hears about "started" (queue wait), "timeout", "restart" and "crash".
        ``cores``: a job starts only once it holds one of them (shared with the local model, by deadline).
        """
        self.queue = JobQueue(policy)
        self.cores = cores
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
            raise failure(job.task, SlotCrashed, "The pool is closed.")
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
                logger.warning("A %s job ran past %.1f s: replacing slot %s", job.task[0], job.time_limit, slot.index)
                self.on_event("timeout", 1)
                slot.job = None
                self._release_core(job)
                job.deliver(("error", failure(job.task, JobTimeout, f"No result within {job.time_limit:.1f} s.")))
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
def child_main(connection, warm_tasks: list[tuple]) -> None:
    """A model process: load the models, then do job after job until the parent goes."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    try:
        _serve(connection, warm_tasks)
    except (EOFError, OSError):
        return  # the parent is gone: nothing to say, nobody to say it to


def _serve(connection, warm_tasks: list[tuple]) -> None:
    import django

    django.setup()
    warm(warm_tasks, full=True)
    connection.send(("ready",))

    def emit(item: tuple) -> None:
        if item[0] == "chunk":
            chunk = item[1]
            connection.send(("chunk", chunk.format, chunk.sample_rate, chunk.channels, chunk.data))
        else:
            connection.send(item)

    while True:
        task = connection.recv()
        try:
            perform(task, emit)
            connection.send(("done",))
        except VoiceError as exc:
            connection.send(("error", type(exc).__name__, exc.code, exc.public_message, str(exc)))
        except (EOFError, OSError):
            raise
        except Exception as exc:
            error = failure(task, SlotCrashed, repr(exc))
            connection.send(("error", "VoiceError", error.code, error.public_message, repr(exc)))


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies, even by SIGKILL (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def rebuild_error(task: tuple, code: str, public: str, detail: str) -> VoiceError:
    family = TTSError if task[0] == "synthesize" else STTError
    return family(detail, code=code, public_message=public)


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
            target=child_main, args=(child, self.pool.warm), name=f"{self.pool.name}-{self.index}", daemon=True
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
                error = failure(job.task, JobTimeout, f"Killed after {job.time_limit:.1f} s.")
            else:
                error = failure(job.task, SlotCrashed, f"The model process died (exit code {process.exitcode}).")
            job.deliver(("error", error))
            self.pool.finished(self, job)
        return process.exitcode

    def _read(self, connection) -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "ready":
                self.ready = True
                self.pool.became_ready()
                continue
            job = self.job
            if job is None:
                continue  # results of a job given up on (a time limit ran out meanwhile)
            if kind == "chunk":
                _kind, format_, rate, channels, data = message
                job.deliver(("chunk", AudioChunk(data=data, sample_rate=rate, format=format_, channels=channels)))
            elif kind == "result":
                job.deliver(message)
            elif kind == "done":
                job.deliver(("done",))
                self.pool.finished(self, job)
            elif kind == "error":
                _kind, _name, code, public, detail = message
                job.deliver(("error", rebuild_error(job.task, code, public, detail)))
                self.pool.finished(self, job)

    def run(self, job: Job) -> None:
        self.connection.send(job.task)

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
        warm(self.pool.warm, full=False)
        self.ready = True
        self.pool.became_ready()
        while (job := inbox.get()) is not None:

            def emit(item: tuple, job: Job = job) -> None:
                if inbox is self._inbox:  # else given up on: another thread has this slot now
                    job.deliver(item)

            try:
                perform(job.task, emit)
                result = ("done",)
            except VoiceError as exc:
                result = ("error", exc)
            except Exception as exc:
                logger.exception("A %s job failed", job.task[0])
                result = ("error", failure(job.task, SlotCrashed, f"{type(exc).__name__}: {exc}"))
            if inbox is not self._inbox:
                return
            job.deliver(result)
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
