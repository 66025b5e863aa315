"""Responders through the whole chat stack, without a model: the openai responder against a fake server that
misbehaves on request, and a local model that is missing. models/ and services/ run the real model."""

import asyncio

import pytest

from voice.models import Message
from voice.tests.asking import (
    INTRODUCTION,
    QUESTION,
    ask,
    earlier_turns,
    introduction_answered,
    reply_text,
    stored_replies,
)
from voice.tests.helpers import audio_frames, connect, done_for, events, until, until_done
from voice.tests.llm_server import SECRET, FakeModelServer
from voice.tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


# --- local: llama.cpp in this process, without its model -------------------------------
async def test_a_missing_model_file_fails_the_reply_plainly(conversation, user, settings, tone_engine):
    settings.VOICE_RESPONDER = "local"
    settings.VOICE_LLM_MODEL_PATH = "/nonexistent/model.gguf"
    (frames,) = await ask(conversation, user, "Hello?")
    (error,) = events(frames, "error")
    assert error["code"] == "llm_unavailable" and "/nonexistent" not in error["message"]
    (reply,) = await stored_replies()
    assert (reply.status, reply.error_code) == ("failed", "llm_unavailable") and "/nonexistent" in reply.error


# --- openai: failures, injected by a server of our own --------------------------------
@pytest.fixture
def fake_server(settings, tone_engine):
    with FakeModelServer() as server:
        settings.VOICE_RESPONDER = "openai"
        settings.VOICE_LLM_BASE_URL = server.base_url
        settings.VOICE_LLM_API_KEY = SECRET
        settings.VOICE_LLM_FIRST_TOKEN_TIMEOUT = 1.0
        settings.VOICE_LLM_TOKEN_TIMEOUT = 0.5
        yield server


def use(settings, scenario):
    settings.VOICE_LLM_MODEL = scenario


@pytest.mark.parametrize(
    ("history_chars", "remembered"),
    [(6000, introduction_answered("Hello there. How are you?")), (0, [])],
    ids=["with-history", "no-history-budget"],
)
async def test_the_conversation_so_far_is_sent_to_the_model_server(
    conversation, user, settings, fake_server, history_chars, remembered
):
    use(settings, "hello")
    settings.VOICE_LLM_HISTORY_CHARS = history_chars
    await ask(conversation, user, INTRODUCTION, QUESTION)
    first, second = (request["messages"] for request in fake_server.requests)
    assert earlier_turns(first) == []
    assert earlier_turns(second) == remembered
    assert second[-1] == {"role": "user", "content": QUESTION}


async def test_keepalives_and_usage_chunks_are_not_text(conversation, user, settings, fake_server):
    use(settings, "keepalive")
    (frames,) = await ask(conversation, user, "Hi?")
    assert reply_text(frames) == "Still here."
    assert events(frames, "reply.done")[0]["status"] == "complete"
    assert fake_server.requests[0]["stream"] is True
    assert fake_server.requests[0]["messages"][-1] == {"role": "user", "content": "Hi?"}


async def test_reasoning_never_reaches_the_page_or_the_ear(conversation, user, settings, fake_server):
    use(settings, "reasoning")
    (frames,) = await ask(conversation, user, "Hi?")
    assert reply_text(frames) == "Hello there."
    spans = {(h["text_start"], h["text_end"]) for h, _ in audio_frames(frames)}
    assert spans == {(0, len("Hello there."))}
    (reply,) = await stored_replies()
    assert (reply.text, reply.status) == ("Hello there.", "complete")
    assert reply.reasoning == "Field one. Field two. Inline, split."


@pytest.mark.parametrize(
    ("scenario", "code", "kept"),
    [
        ("error-midstream", "llm_failed", "Half a "),
        ("vllm-error", "llm_failed", "Half a "),
        ("malformed", "llm_bad_response", "Half a "),
        ("stall", "llm_timeout", "Half a "),
        ("silent", "llm_timeout", ""),
        ("rate-limited", "llm_rate_limited", ""),
        ("server-error", "llm_failed", ""),
        ("bad-request", "llm_failed", ""),
    ],
)
async def test_model_server_failures_keep_the_text_and_say_only_a_code(
    conversation, user, settings, fake_server, scenario, code, kept
):
    use(settings, scenario)
    (frames,) = await ask(conversation, user, "Hi?")
    (error,) = events(frames, "error")
    assert error["code"] == code
    for leak in (SECRET, "10.0.0.5", "127.0.0.1", "Traceback", "Error:"):
        assert leak not in error["message"]
    assert reply_text(frames) == kept
    assert events(frames, "reply.done")[0]["status"] == "failed"
    (reply,) = await stored_replies()
    assert (reply.status, reply.text, reply.error_code) == ("failed", kept, code)
    assert reply.error  # the details are for staff
    assert await Message.objects.filter(role="user", text="Hi?").aexists()


async def test_an_unreachable_server_is_a_plain_error(conversation, user, settings, tone_engine):
    settings.VOICE_RESPONDER = "openai"
    settings.VOICE_LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    (frames,) = await ask(conversation, user, "Anyone?")
    assert events(frames, "error")[0]["code"] == "llm_unavailable"
    assert events(frames, "reply.done")[0]["status"] == "failed"


async def test_an_interruption_closes_the_upstream_request(conversation, user, settings, fake_server):
    use(settings, "slow")
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "Talk for a long time."})
    first_delta = (await until(tab, lambda event: event["type"] == "reply.delta"))[-1][1]
    use(settings, "hello")
    await tab.send_json_to({"type": "query", "text": "Stop, please."})
    frames = await until(tab, done_for(first_delta["message_id"]))
    assert events(frames, "reply.done")[-1]["status"] == "interrupted"
    # The model server sees the client go long before its 200 words are out.
    assert await asyncio.to_thread(fake_server.hung_up.wait, 5)
    await until_done(tab)
    await tab.disconnect()
    first, second = await stored_replies()
    assert first.status == "interrupted" and 0 < len(first.text) < len("Word 199. ") * 100
    assert (second.status, second.text) == ("complete", "Hello there. How are you?")
