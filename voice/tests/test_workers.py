"""Worker dispatch in one process: a real channel layer (in memory, then Redis) and a real worker server."""

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer

from voice.management.commands.runworker import ResilientWorker
from voice.models import Message
from voiceproject.asgi import application

from .conftest import audio_frames, connect, events, receive_frame, until_done

pytestmark = pytest.mark.django_db(transaction=True)

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def layer(request, settings):
    if request.param == "redis":
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                # A prefix of its own: nothing else on this Redis is touched.
                "CONFIG": {
                    **settings.CHANNEL_LAYERS["default"].get("CONFIG", {}),
                    "hosts": [{"address": REDIS, "socket_timeout": 10}],
                    "prefix": f"test-{uuid.uuid4().hex[:8]}",
                    "expiry": 10,
                },
            }
        }
    return request.param


@pytest.fixture
def worker_mode(settings, layer):
    settings.VOICE_TTS_DISPATCH = "worker"
    settings.VOICE_TTS_WORKER_TIMEOUT = 3
    settings.VOICE_TTS_STALL_TIMEOUT = 3


@pytest.fixture
async def worker(worker_mode):
    """A speech worker, as `runworker voice-tts` runs it, in this process."""
    server = ResilientWorker(application=application, channels=["voice-tts"], channel_layer=get_channel_layer())
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
    settings.VOICE_TTS_DISPATCH = "worker"
    settings.VOICE_TTS_WORKER_TIMEOUT = 3
    server = ResilientWorker(application=application, channels=["voice-tts"], channel_layer=get_channel_layer())
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


async def test_without_a_worker_the_text_still_comes_as_audio_failed(conversation, user, tone_engine, worker_mode):
    frames = await ask(conversation, user, "Is anybody there?")
    (error,) = events(frames, "error")
    assert error["code"] == "tts_timeout"
    assert "".join(e["text"] for e in events(frames, "reply.delta")) == "Is anybody there?"
    assert events(frames, "reply.done")[0]["status"] == "audio_failed"
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.text, reply.produced_by.split(":")[0]) == (
        "audio_failed",
        "Is anybody there?",
        "server",
    )
    assert await Message.objects.filter(role="user", text="Is anybody there?").aexists()


async def test_a_late_worker_leaves_a_reply_it_did_not_claim(conversation, user, tone_engine, worker_mode, settings):
    settings.VOICE_TTS_WORKER_TIMEOUT = 0.5
    frames = await ask(conversation, user, "Too late.")
    assert events(frames, "reply.done")[0]["status"] == "audio_failed"
    # Now a worker turns up and finds the old job: it must not produce the reply again.
    server = ResilientWorker(application=application, channels=["voice-tts"], channel_layer=get_channel_layer())
    task = asyncio.create_task(server.handle())
    await asyncio.sleep(1)
    task.cancel()
    reply = await Message.objects.aget(role="assistant")
    assert reply.produced_by.startswith("server:") and reply.status == "audio_failed"


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


async def test_a_worker_that_goes_silent_is_given_up_on(conversation, user, worker_mode, settings):
    """A worker that accepts and then dies (at-most-once delivery): the text is kept, nothing hangs."""
    layer = get_channel_layer()

    async def accept_and_die():
        job = await layer.receive("voice-tts")
        await asyncio.to_thread(Message(pk=job["message_id"]).claim, "worker:doomed")
        await layer.send(
            job["reply_to"],
            {"type": "tts.accepted", "message_id": job["message_id"], "cancel_channel": await layer.new_channel()},
        )

    doomed = asyncio.create_task(accept_and_die())
    frames = await ask(conversation, user, "Hello?")
    await doomed
    assert [e["code"] for e in events(frames, "error")] == ["tts_stalled"]
    assert events(frames, "reply.done")[0]["status"] == "audio_failed"
    reply = await Message.objects.aget(role="assistant")
    assert reply.status == "audio_failed" and "silent" in reply.error
