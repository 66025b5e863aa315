"""Deadline order across the model and speech: when a reply needs text, and who gets a core next."""

import threading
import time

import pytest

from voice.pool import Done, SlotPool, Work
from voice.scheduling import CHARS_PER_SECOND, Cores, Demand, Job, JobQueue
from voice.tts.service import FAILURES, synthesize_in_slot


def test_a_reply_needs_text_at_once_until_its_first_audio_then_before_its_listener_runs_low():
    demand = Demand(write_ahead=4.0)
    assert demand.text_due() == 0.0  # the first clause: due now, whatever the clock says
    demand.written("A first clause,")
    assert demand.text_due() == 0.0
    now = 1000.0
    demand.clock.sent(2.0, at=now)  # its audio is sent: the listener has 2 s
    demand.spoken("A first clause,")
    assert demand.text_due() == pytest.approx(now + 2.0 - 4.0)  # less than the write-ahead: due already
    sentence = "x" * round(10 * CHARS_PER_SECOND)  # written, about 10 s of speech still to synthesize
    demand.written(sentence)
    assert demand.text_due() == pytest.approx(now + 2.0 + 10.0 - 4.0)
    demand.spoken(sentence)
    demand.clock.sent(10.0, at=now + 1)  # said: now it is audio the listener has
    assert demand.text_due() == pytest.approx(now + 12.0 - 4.0)


def test_a_listener_with_20_s_of_audio_gets_no_model_step_before_a_new_first_clause():
    old, new = Demand(write_ahead=4.0), Demand(write_ahead=4.0)
    old.clock.sent(20.0)
    assert new.text_due() < time.monotonic() < old.text_due()


def hold(cores: Cores, due: float, order: list, name: str) -> threading.Thread:
    def run():
        cores.acquire(due)
        order.append(name)
        cores.release()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_for(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_free_core_goes_to_the_earliest_due_waiter():
    cores = Cores(1)
    cores.acquire(0.0)  # busy
    order: list[str] = []
    late = hold(cores, due=50.0, order=order, name="late")
    wait_for(lambda: len(cores._waiting) == 1)
    early = hold(cores, due=10.0, order=order, name="early")
    wait_for(lambda: len(cores._waiting) == 2)
    assert not cores.try_acquire(20.0)  # a pool's job due later than a waiting step must wait too
    cores.release()
    late.join(5)
    early.join(5)
    assert order == ["early", "late"]


def test_a_model_step_waits_for_a_synthesis_job_due_before_it_and_takes_the_core_after():
    cores = Cores(1)
    queue = JobQueue()
    job = Job(work=Work("e"), due=5.0, deliver=lambda message: None)
    queue.put(job)
    cores.attach(queue.earliest_due, lambda: None)
    order: list[str] = []
    step = hold(cores, due=9.0, order=order, name="model step")
    # The pool's dispatcher: its head is due first, so it gets the free core.
    wait_for(lambda: len(cores._waiting) == 1)
    assert cores.try_acquire(job.due)
    with queue.changed:
        assert queue.pop() is job
    order.append("synthesis")
    cores.release()
    step.join(5)
    assert order == ["synthesis", "model step"]


def test_a_spare_core_is_one_that_no_waiter_and_no_pool_wants():
    cores = Cores(2)
    queue = JobQueue()
    cores.attach(queue.earliest_due, lambda: None)
    cores.acquire(0.0)  # the model's step
    assert cores.try_acquire_spare()  # nothing else wants the other: a second thread for the step
    cores.release()
    queue.put(Job(work=Work("e"), due=99.0, deliver=lambda message: None))
    assert not cores.try_acquire_spare()  # a synthesis job waits to start, however late it is due
    assert cores.try_acquire(99.0)  # and gets the core
    assert not cores.try_acquire_spare()  # none is free


def test_the_pool_starts_a_job_only_with_a_core(settings):
    """A synthesis pool that shares the cores with a busy model waits for one to come free."""
    cores = Cores(1)
    pool = SlotPool(1, processes=False, policy="deadline", failures=FAILURES, cores=cores).start()
    try:
        pool.wait_ready(10)
        cores.acquire(0.0)  # the model is stepping
        done = threading.Event()
        work = Work.of(synthesize_in_slot, "voice.tests.engines.ToneEngine", "a440", 1.0, "Hi.")
        pool.submit(Job(work=work, due=1.0, deliver=lambda message: message == Done() and done.set()))
        assert not done.wait(0.3)  # no core, no start
        cores.release()
        assert done.wait(10)
        wait_for(lambda: cores.busy == 0)  # and the job gave its core back
    finally:
        pool.close()
