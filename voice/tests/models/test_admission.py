"""Admission through the chat socket, with the real local model: a reply that must wait is told so, and past
the limit a new one is refused plainly, its question kept."""

import functools

import pytest
from asgiref.sync import sync_to_async

from voice.models import Conversation, Message
from voice.responders.batching import Generation
from voice.tests.helpers import connect, events, first_audio, until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_sequence(settings, tone_engine, monkeypatch):
    # Replies as long as max_tokens: how soon this model would stop differs between CPUs.
    monkeypatch.setattr("voice.responders.local.Generation", functools.partial(Generation, ignore_end=True))
    settings.VOICE_RESPONDER = "local"
    settings.VOICE_LLM_SEQUENCES = 1
    settings.VOICE_LLM_QUEUE_LIMIT = 1
    settings.VOICE_LLM_MAX_TOKENS = 60
    # Once a reply is heard, its listener seems to have audio for ever: the
    # model writes nothing more of it, and it keeps its sequence until stopped.
    settings.VOICE_LLM_WRITE_AHEAD = -3600


async def test_a_reply_that_must_wait_is_told_its_place_and_one_too_many_is_refused(user, one_sequence):
    first, second, third = [await sync_to_async(Conversation.objects.create)(owner=user) for _ in range(3)]
    first_tab, second_tab, third_tab = [await connect(c, user) for c in (first, second, third)]
    await first_tab.send_json_to({"type": "query", "text": "Tell me about the sea."})
    first_reply = await first_audio(first_tab)  # it holds the only sequence now

    await second_tab.send_json_to({"type": "query", "text": "Tell me about the sky."})
    (queued,) = events(await until(second_tab, lambda e: e["type"] == "queued"), "queued")
    assert queued["position"] == 1 and set(queued) == {"type", "message_id", "position", "expected_wait_ms"}

    await third_tab.send_json_to({"type": "query", "text": "Tell me about the hills."})
    frames = await until(third_tab, lambda e: e["type"] == "reply.done")
    (error,) = events(frames, "error")
    assert error["code"] == "llm_busy" and "moment" in error["message"]
    assert events(frames, "reply.done")[0]["status"] == "failed"
    refused = await Message.objects.select_related("reply_to").aget(pk=error["message_id"])
    assert (refused.status, refused.error_code) == ("failed", "llm_busy")
    assert refused.reply_to.text == "Tell me about the hills."

    # The first reply stops: the waiting one gets the sequence and is written.
    await first_tab.send_json_to({"type": "cancel", "message_id": first_reply, "heard_ms": 100})
    frames = await until(second_tab, lambda e: e["type"] == "reply.delta", seconds=30)
    assert events(frames, "reply.delta")[0]["message_id"] == queued["message_id"]
    await second_tab.send_json_to({"type": "cancel"})
    await until(second_tab, lambda e: e["type"] == "reply.done", seconds=30)
    for tab in (first_tab, second_tab, third_tab):
        await tab.disconnect()
