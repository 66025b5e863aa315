"""Synthesis under supervision: deadline scheduling, fault engines in real processes, the cache, the metrics.

services/test_synthesis.py shares the cache through Redis.
"""

import os
import queue
import time

import pytest

from voice.exceptions import BadSpeed, VoiceError
from voice.models import Conversation
from voice.pool import Done, Failed, Failures, Output, SlotPool, Work
from voice.scheduling import DEADLINE, FIFO, Job, JobQueue, PlaybackClock
from voice.tests.engines import LongToneEngine
from voice.tests.helpers import audio_frames, chunk, connect, events, eventually, until_done
from voice.tests.servers import wait_until
from voice.tts import cache as segment_cache
from voice.tts.base import check_speed
from voice.tts.service import FAILURES, synthesize_in_slot, warm_up

FAULTY = "voice.tests.engines.FaultyEngine"


# --- The queue -----------------------------------------------------------------------------
def job(text, due, submitted_at=0.0):
    return Job(work=Work("e", (text,)), due=due, deliver=print, submitted_at=submitted_at)


def drain(jobs: JobQueue) -> list[str]:
    order = []
    while (next_job := jobs.pop()) is not None:
        order.append(next_job.work.args[0])
    return order


def test_earliest_deadline_first_ties_by_arrival():
    jobs = JobQueue(DEADLINE)
    for text, due in [("later", 5.0), ("now", 1.0), ("soon", 2.0), ("now too", 1.0)]:
        jobs.put(job(text, due))
    assert drain(jobs) == ["now", "now too", "soon", "later"]


def test_first_in_first_out_ignores_deadlines():
    jobs = JobQueue(FIFO)
    for n, (text, due) in enumerate([("later", 5.0), ("now", 1.0), ("soon", 2.0)]):
        jobs.put(job(text, due, submitted_at=n))
    assert drain(jobs) == ["later", "now", "soon"]


def test_cancelled_jobs_are_skipped():
    jobs = JobQueue(DEADLINE)
    dropped = job("dropped", 1.0)
    jobs.put(dropped)
    jobs.put(job("kept", 2.0))
    dropped.cancel()
    assert len(jobs) == 1 and drain(jobs) == ["kept"]


def test_the_playback_clock_sets_deadlines_and_sees_stalls():
    clock = PlaybackClock()
    assert clock.due(margin=0.5) <= time.monotonic()  # the first segment: needed now
    clock.sent(3.0, at=100.0)
    clock.sent(2.0, at=101.0)  # queued behind the first: ends at 105
    assert clock.ends_at == 105.0
    clock.sent(1.0, at=110.0)  # arrived after the audio ran out: plays from its arrival
    assert clock.ends_at == 111.0


# --- Supervised processes ---------------------------------------------------------------------
class Results:
    """Collects what the pool delivers for one job."""

    def __init__(self):
        self.items = queue.Queue()

    def __call__(self, item):
        self.items.put(item)

    def outcome(self, timeout=30):
        chunks = []
        while True:
            message = self.items.get(timeout=timeout)
            if isinstance(message, Output):
                chunks.append(message.value)
            else:
                return message, chunks


def submit(pool, text, time_limit=30.0):
    results = Results()
    work = Work.of(synthesize_in_slot, FAULTY, "a440", 1.0, text)
    pool.submit(Job(work=work, due=time.monotonic(), deliver=results, time_limit=time_limit))
    return results


def faulty_pool(size, **options):
    return SlotPool(
        size, processes=True, policy=DEADLINE, failures=FAILURES, warm=[Work.of(warm_up, FAULTY, None, True)], **options
    )


@pytest.fixture(scope="module")
def pool():
    events = []
    pool = faulty_pool(2, on_event=lambda *e: events.append(e))
    pool.events = events
    pool.start()
    assert pool.wait_ready(60), "the synthesis processes did not start"
    yield pool
    pool.close()


def processes(pool):
    return [slot.process.pid for slot in pool.slots]


def test_a_process_synthesizes_and_reports(pool):
    (end, chunks) = submit(pool, "Hello.").outcome()
    assert end == Done() and len(chunks) == 1
    assert (chunks[0].format, chunks[0].sample_rate, len(chunks[0].data)) == ("pcm_s16le", 16000, 3200)


def test_a_hung_job_costs_its_process_and_nothing_else(pool):
    before = processes(pool)
    limit = 1.0  # seconds: hundreds of times what the other jobs take
    hung = submit(pool, "Please hang here.", time_limit=limit)
    started = time.monotonic()
    # Meanwhile the other process keeps serving everyone else.
    for n in range(5):
        end, chunks = submit(pool, f"Sentence {n}.").outcome(timeout=5)
        assert end == Done() and chunks
    assert time.monotonic() - started < limit, "other jobs waited for the hung one"
    (end, _chunks) = hung.outcome()
    assert isinstance(end, Failed) and end.error.code == "tts_timeout"
    assert pool.wait_ready(60)
    after = processes(pool)
    assert len(set(before) - set(after)) == 1, "exactly the hung process is replaced"
    assert ("timeout", 1) in pool.events and ("restart", 1) in pool.events
    assert submit(pool, "Back to normal.").outcome()[0] == Done()


def test_a_crashing_process_is_replaced(pool):
    (end, _chunks) = submit(pool, "Now crash, please.").outcome()
    assert isinstance(end, Failed) and end.error.code == "tts_failed" and "exit code 3" in str(end.error)
    assert ("crash", 1) in pool.events
    assert pool.wait_ready(60)
    assert submit(pool, "Still here.").outcome()[0] == Done()


def test_an_engine_exception_is_a_plain_error(pool):
    (end, _chunks) = submit(pool, "Now raise.").outcome()
    error = end.error
    assert (error.code, error.public_message) == ("tts_failed", "Speech failed; the reply continues as text.")
    assert "engine exploded" in str(error)


def test_closing_the_pool_ends_its_processes():
    pool = faulty_pool(1).start()
    assert pool.wait_ready(60)
    process = pool.slots[0].process
    submit(pool, "hang forever", time_limit=600)
    pool.close()
    # Not process.join(): the pool's supervisor thread reaps the process, and a
    # second waiter would see "still alive" forever. The pid going away is the proof.
    wait_until(lambda: not pid_exists(process.pid), 10, "The killed model process did not go away")


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- Any work, failing in its caller's terms --------------------------------------------------
CALLERS_TERMS = Failures(VoiceError, timeout_code="too_slow", timeout_message="That took too long.")


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_the_pool_runs_the_work_it_is_given_and_fails_it_as_its_user_says(processes):
    pool = SlotPool(1, processes=processes, policy=DEADLINE, failures=CALLERS_TERMS).start()

    def run(work, time_limit=30.0):
        results = Results()
        pool.submit(Job(work=work, due=time.monotonic(), deliver=results, time_limit=time_limit))
        return results.outcome()

    try:
        assert pool.wait_ready(60)
        assert run(Work.of(range, 3)) == (Done(), [0, 1, 2])
        (end, _outputs) = run(Work.of(range, "three"))  # an unexpected exception
        assert type(end.error) is VoiceError and end.error.code == "error" and "TypeError" in str(end.error)
        (end, _outputs) = run(Work.of(time.sleep, 10), time_limit=0.5)
        assert (end.error.code, end.error.public_message) == ("too_slow", "That took too long.")
        assert pool.wait_ready(60)
        (end, _outputs) = run(Work.of(check_speed, 9.0))  # a VoiceError of the work's own
        assert type(end.error) is BadSpeed and end.error.public_message == "Speed must be a number from 0.5 to 2."
        assert run(Work.of(range, 1)) == (Done(), [0])
    finally:
        pool.close()


# --- Through the chat -------------------------------------------------------------------------------
pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
async def test_a_hung_engine_costs_the_audio_of_one_reply_not_the_text(conversation, user, settings):
    settings.VOICE_TTS_PROCESSES = 2
    settings.VOICE_TTS_ENGINE = FAULTY
    settings.VOICE_TTS_JOB_TIMEOUT = 1.0
    settings.VOICE_TTS_JOB_TIMEOUT_PER_CHAR = 0.0
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "First we hang. Then the rest."})
    frames = await until_done(tab)
    assert [e["code"] for e in events(frames, "error")] == ["tts_timeout"]
    assert events(frames, "reply.done")[0]["status"] == "audio_failed"
    assert "".join(e["text"] for e in events(frames, "reply.delta")) == "First we hang. Then the rest."
    # The next reply speaks: the pool replaced the process.
    await tab.send_json_to({"type": "query", "text": "Are you back?"})
    frames = await until_done(tab, seconds=60)
    assert events(frames, "reply.done")[0]["status"] == "complete" and audio_frames(frames)
    await tab.disconnect()


@pytestmark_db
@pytest.mark.parametrize(("policy", "jumps_the_queue"), [("deadline", True), ("fifo", False)])
async def test_a_new_reply_starts_before_the_slack_of_others(conversation, user, settings, policy, jumps_the_queue):
    """Three replies are playing (two seconds of audio per segment, made in 0.2 s); a fourth user asks."""
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.LongToneEngine"
    settings.VOICE_TTS_THREADS = 1
    settings.VOICE_TTS_SCHEDULING = policy
    settings.VOICE_FIRST_CLAUSE_CHARS = 0
    LongToneEngine.started = []
    # Each in a conversation of its own, so that none interrupts another.
    conversations = [await Conversation.objects.acreate(owner=user) for _ in range(4)]
    playing = [await connect(c, user) for c in conversations[:3]]
    for n, tab in enumerate(playing):
        await tab.send_json_to({"type": "query", "text": f"Reply {n} one. Reply {n} two. Reply {n} three."})
    # Once every playing reply has a later segment waiting, the newcomer asks.
    await eventually(lambda: any(text.endswith("two.") for text in LongToneEngine.started), every=0.01)
    newcomer = await connect(conversations[3], user)
    await newcomer.send_json_to({"type": "query", "text": "Newcomer."})
    await until_done(newcomer, seconds=30)
    position = LongToneEngine.started.index("Newcomer.")
    waiting_before = [text for text in LongToneEngine.started[:position] if not text.endswith("one.")]
    # Deadline first: the newcomer goes before the other replies' later segments, which have slack.
    assert (len(waiting_before) <= 1) is jumps_the_queue, LongToneEngine.started
    for tab in [*playing, newcomer]:
        await tab.disconnect()


# --- The cache -----------------------------------------------------------------------------------------
async def test_the_cache_returns_identical_bytes_and_keeps_to_its_bound():
    cache = segment_cache.SegmentCache(max_bytes=3000)
    keys = [segment_cache.key("piper", "joe", 1.0, f"Segment {n}.") for n in range(4)]
    for n, key in enumerate(keys[:3]):
        await cache.put(key, segment_cache.Entry((chunk(n),), 0.1))
    assert (await cache.get(keys[0])).chunks == (chunk(0),)  # used: now the most recent
    await cache.put(keys[3], segment_cache.Entry((chunk(3),), 0.1))
    assert cache.bytes <= 3000 and len(cache) == 3
    assert await cache.get(keys[1]) is None  # the least recently used went
    assert (await cache.get(keys[3])).chunks == (chunk(3),)
    assert segment_cache.key("piper", "joe", 1.25, "Segment 0.") != keys[0]


async def test_the_shared_cache_holds_at_most_its_slots_and_never_another_segment():
    from django.core.cache import caches

    slots = 3
    one = segment_cache.SegmentCache(0, "default", shared_bytes=slots * segment_cache.MAX_SHARED_BYTES)
    other = segment_cache.SegmentCache(0, "default", shared_bytes=slots * segment_cache.MAX_SHARED_BYTES)
    keys = [segment_cache.key("piper", "joe", 1.0, f"Shared segment {n}.") for n in range(20)]
    for n, key in enumerate(keys):
        await one.put(key, segment_cache.Entry((chunk(n),), 0.1))
    held = [k for k in caches["default"]._cache if segment_cache.SHARED_PREFIX in k]
    assert 0 < len(held) <= slots  # twenty segments said, three slots' worth kept
    found = {n: await other.get(key) for n, key in enumerate(keys)}  # another process, as it were
    assert all(entry is None or entry.chunks == (chunk(n),) for n, entry in found.items())
    assert found[19].chunks == (chunk(19),)  # the newest is always there
    assert sum(entry is not None for entry in found.values()) == len(held)


@pytestmark_db
async def test_a_segment_said_before_comes_from_the_cache(conversation, user, tone_engine):
    from voice.tts.service import synthesis

    tab = await connect(conversation, user)
    first = None
    for _ in range(2):
        await tab.send_json_to({"type": "query", "text": "Good morning. How are you?"})
        frames = await until_done(tab)
        pcm = b"".join(data for _header, data in audio_frames(frames))
        first = first or pcm
        assert pcm == first
    await tab.disconnect()
    assert (synthesis().misses, synthesis().hits) == (2, 2)


# --- Metrics ---------------------------------------------------------------------------------------------
@pytestmark_db
async def test_the_metrics_endpoint_reports_what_happened(conversation, user, staff_user, tone_engine, settings):
    from asgiref.sync import sync_to_async
    from django.test import Client

    tab = await connect(conversation, user)
    for text in ["Count me.", "Count me."]:
        await tab.send_json_to({"type": "query", "text": text})
        await until_done(tab)
    await tab.disconnect()

    def scrape(client, **headers):
        return client.get("/metrics", **headers)

    anonymous, staff = Client(), Client()
    await sync_to_async(staff.force_login)(staff_user)
    assert (await sync_to_async(scrape)(anonymous)).status_code == 403
    body = (await sync_to_async(scrape)(staff)).content.decode()
    assert 'voice_replies_total{status="complete"}' in body
    assert sample(body, "voice_tts_cache_hits_total") >= 1
    assert sample(body, "voice_ttfa_seconds_count") >= 2
    assert "voice_synthesis_queue_depth" in body and "voice_active_sockets" in body
    settings.VOICE_METRICS_TOKEN = "scrape-me"
    response = await sync_to_async(scrape)(anonymous, HTTP_AUTHORIZATION="Bearer scrape-me")
    assert response.status_code == 200
    assert (await sync_to_async(scrape)(anonymous, HTTP_AUTHORIZATION="Bearer wrong")).status_code == 403
    # A header of any bytes is only a wrong token (headers arrive as Latin-1: this is what "é" sends).
    assert (await sync_to_async(scrape)(anonymous, HTTP_AUTHORIZATION="Bearer scrape-mÃ©")).status_code == 403


def sample(body: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))
