"""Worker dispatch in one process: a real channel layer (in memory; Redis in services/) and a real worker server."""

import asyncio
import dataclasses
import time

import pytest
from channels.layers import get_channel_layer

from voice.dispatch import WORKER_CHANNEL, WorkerDispatch
from voice.management.commands.runworker import ResilientWorker
from voice.models import Message
from voice.protocol import ReplyAccepted
from voice.publishing import GroupPublisher
from voice.replies import ChatReply
from voice.tests.helpers import audio_frames, connect, events, eventually, receive_frame, until, until_done
from voice.turns import accept_query
from voiceproject.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer():
    """The channel layer of the tests: the settings' own, in memory (services/test_workers.py: Redis)."""
    return "memory"


@pytest.fixture
def worker_mode(settings, layer):
    settings.VOICE_REPLY_DISPATCH = "worker"
    settings.VOICE_REPLY_WORKER_TIMEOUT = 3


@pytest.fixture
async def worker(worker_mode):
    """A reply worker, as `runworker voice-replies` runs it, in this process."""
    server = ResilientWorker(application=application, channels=[WORKER_CHANNEL], channel_layer=get_channel_layer())
    task = asyncio.create_task(server.handle())
    yield server
    task.cancel()
    for instance in server.application_instances.values():
        instance["future"].cancel()
    await asyncio.gather(task, *(i["future"] for i in server.application_instances.values()), return_exceptions=True)


def shape(frames):
    """What a client sees, without ids and timings.

    Text and audio come from two concurrent tasks, so only the order within
    each stream is fixed, not how the two interleave.
    """
    audio = [(header["seq"], len(data)) for header, data in audio_frames(frames)]
    text = [event["text"] for event in events(frames, "reply.delta")]
    others = [(e["type"], e.get("status"), e.get("code")) for e in events(frames) if e["type"] != "reply.delta"]
    return audio, text, others


async def ask(conversation, user, text):
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": text})
    frames = await until_done(communicator)
    await communicator.disconnect()
    return frames


async def test_worker_and_inline_replies_look_the_same_on_the_wire(conversation, user, tone_engine, settings, layer):
    inline = await ask(conversation, user, "First sentence. Second sentence.")
    settings.VOICE_REPLY_DISPATCH = "worker"
    settings.VOICE_REPLY_WORKER_TIMEOUT = 3
    server = ResilientWorker(application=application, channels=[WORKER_CHANNEL], channel_layer=get_channel_layer())
    task = asyncio.create_task(server.handle())
    try:
        by_worker = await ask(conversation, user, "First sentence. Second sentence.")
    finally:
        task.cancel()
    assert shape(by_worker) == shape(inline)
    assert len(audio_frames(by_worker)) == 2
    replies = [m async for m in Message.objects.filter(role="assistant").order_by("pk")]
    assert [r.produced_by.split(":")[0] for r in replies] == ["server", "worker"]
    assert [r.status for r in replies] == ["complete", "complete"]
    assert replies[1].duration_ms == 200 and replies[1].ttfa_ms is not None


async def test_without_a_worker_the_text_still_comes_as_audio_failed(
    conversation, user, tone_engine, worker_mode, settings
):
    settings.VOICE_REPLY_WORKER_TIMEOUT = 0.5  # no worker will take it: no need to wait longer
    frames = await ask(conversation, user, "Is anybody there?")
    (error,) = events(frames, "error")
    assert error["code"] == "worker_timeout"
    assert "".join(e["text"] for e in events(frames, "reply.delta")) == "Is anybody there?"
    assert events(frames, "reply.done")[0]["status"] == "audio_failed"
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.text, reply.produced_by.split(":")[0]) == (
        "audio_failed",
        "Is anybody there?",
        "server",
    )
    assert await Message.objects.filter(role="user", text="Is anybody there?").aexists()


async def job_for(conversation, text: str, deadline_in: float, claimed_by: str = "") -> tuple[dict, Message]:
    """A stored query and its placeholder reply, and the job a server would send for it."""
    _query, reply = await accept_query(conversation, text)
    if claimed_by:
        await asyncio.to_thread(reply.claim, claimed_by)
    layer = get_channel_layer()
    dispatch = WorkerDispatch(ChatReply(reply, GroupPublisher(layer, conversation.group_name)), "nobody!listens")
    job = dataclasses.replace(dispatch.job(), deadline=time.time() + deadline_in)
    return job.to_event(), reply


async def test_a_worker_leaves_jobs_past_their_deadline(conversation, tone_engine, worker):
    expired, left_alone = await job_for(conversation, "Asked long ago.", deadline_in=-1)
    fresh, produced = await job_for(conversation, "Asked just now.", deadline_in=10)
    layer = get_channel_layer()
    await layer.send(WORKER_CHANNEL, expired)
    await layer.send(WORKER_CHANNEL, fresh)
    # Jobs are taken in order: once the fresh one is done, the expired one was seen.
    await eventually(lambda: Message.objects.filter(pk=produced.pk, status="complete").aexists())
    left_alone = await Message.objects.aget(pk=left_alone.pk)
    assert (left_alone.produced_by, left_alone.status) == ("", "streaming")


async def test_a_worker_leaves_a_reply_another_process_claimed(conversation, tone_engine, worker):
    taken, claimed = await job_for(conversation, "Answered elsewhere.", deadline_in=10, claimed_by="server:x:1")
    fresh, produced = await job_for(conversation, "Asked just now.", deadline_in=10)
    layer = get_channel_layer()
    await layer.send(WORKER_CHANNEL, taken)
    await layer.send(WORKER_CHANNEL, fresh)
    await eventually(lambda: Message.objects.filter(pk=produced.pk, status="complete").aexists())
    claimed = await Message.objects.aget(pk=claimed.pk)
    assert (claimed.produced_by, claimed.status, claimed.text) == ("server:x:1", "streaming", "")


async def test_cancel_reaches_the_worker(conversation, user, gated_engine, worker):
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "One. Two. Three."})
    while (await receive_frame(communicator))[0] != "audio":
        pass
    await communicator.send_json_to({"type": "cancel"})
    frames = await until_done(communicator, seconds=5)
    assert events(frames, "reply.done")[0]["status"] == "cancelled"
    await communicator.disconnect()
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.produced_by.split(":")[0]) == ("cancelled", "worker")


async def test_a_worker_that_dies_after_accepting_is_noticed_by_its_heartbeat(
    conversation, user, worker_mode, settings
):
    """A worker that accepts and then dies (at-most-once delivery): the reply is finalized, nothing hangs."""
    settings.VOICE_REPLY_STALE_AFTER = 1.0
    settings.VOICE_REPLY_SWEEP_INTERVAL = 0.2
    layer = get_channel_layer()

    async def accept_and_die():
        job = await layer.receive(WORKER_CHANNEL)
        await asyncio.to_thread(Message(pk=job["message_id"]).claim, "worker:elsewhere:1", "nowhere!")
        await layer.send(job["reply_to"], ReplyAccepted(job["message_id"]).to_event())

    doomed = asyncio.create_task(accept_and_die())
    frames = await ask(conversation, user, "Hello?")
    await doomed
    assert events(frames, "reply.done")[0]["status"] == "interrupted"
    assert events(frames, "message")[-1]["message"]["status"] == "interrupted"
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.error_code) == ("interrupted", "producer_gone")
    assert "worker:elsewhere:1" in reply.error


async def test_a_reply_stopped_before_any_worker_takes_it_never_starts(
    conversation, user, tone_engine, worker_mode, settings
):
    settings.VOICE_REPLY_WORKER_TIMEOUT = 0.5
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "Never mind."})
    placeholder = (await until(tab, lambda e: e["type"] == "message" and e["message"]["role"] == "assistant"))[-1]
    await tab.send_json_to({"type": "cancel"})
    frames = await until_done(tab)
    assert events(frames, "reply.done")[0]["status"] == "cancelled"
    # The server's own fallback (no worker took it in time) must not bring it back.
    assert await tab.receive_nothing(1.0)
    await tab.disconnect()
    reply = await Message.objects.aget(pk=placeholder[1]["message"]["id"])
    assert (reply.status, reply.produced_by, reply.text) == ("cancelled", "stopped-before-start", "")
