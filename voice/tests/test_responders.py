"""Responders through the whole chat stack: the local model, a real OpenAI-compatible server, and its failures."""

import asyncio
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async

from voice.models import Message
from voice.responders import local
from voice.tests.servers import answers_http, free_port, wait_until

from .conftest import assert_is_speech, audio_frames, connect, done_for, events, until, until_done
from .llm_server import SECRET, FakeModelServer

pytestmark = pytest.mark.django_db(transaction=True)


async def ask(conversation, user, *queries, seconds=60):
    """Send each query once the previous reply is done; the frames of each reply."""
    tab = await connect(conversation, user)
    replies = []
    for query in queries:
        await tab.send_json_to({"type": "query", "text": query})
        replies.append(await until_done(tab, seconds=seconds))
    await tab.disconnect()
    return replies


def reply_text(frames) -> str:
    return "".join(event["text"] for event in events(frames, "reply.delta"))


async def stored_replies():
    return await sync_to_async(list)(Message.objects.filter(role="assistant").order_by("pk"))


INTRODUCTION = "My name is Zorblat."
QUESTION = "What is my name?"


def earlier_turns(messages: list[dict]) -> list[dict]:
    """What a model was told of the conversation so far: the messages between the system prompt and the query."""
    assert messages[-1]["role"] == "user", messages
    return [message for message in messages[:-1] if message["role"] != "system"]


def introduction_answered(reply: str) -> list[dict]:
    """The earlier turns a model should be told once INTRODUCTION got ``reply``."""
    return [{"role": "user", "content": INTRODUCTION}, {"role": "assistant", "content": reply}]


@pytest.fixture
def short_answers(settings):
    # No assertion depends on the words: llama.cpp is built for each CPU, so even
    # greedy output differs between machines. Greedy only makes a failure repeat
    # on the machine that saw it; the cap keeps a reply to a few seconds.
    settings.VOICE_LLM_TEMPERATURE = 0.0
    settings.VOICE_LLM_MAX_TOKENS = 60


# --- local: llama.cpp in this process ------------------------------------------------
@pytest.fixture
def local_model_messages(settings, monkeypatch):
    """The local model answers; each message list it is given, in order."""
    settings.VOICE_RESPONDER = "local"
    given: list[list[dict]] = []
    build_messages = local.chat_messages

    def recording(*args, **kwargs):
        messages = build_messages(*args, **kwargs)
        given.append(messages)
        return messages

    monkeypatch.setattr(local, "chat_messages", recording)
    return given


async def test_the_local_model_answers_aloud_and_remembers_the_conversation(
    conversation, user, short_answers, local_model_messages
):
    introduce, recall = await ask(conversation, user, INTRODUCTION, QUESTION)
    first = reply_text(introduce)
    assert first.strip()
    # One delta per token: an answer written whole would come as one.
    assert len(events(introduce, "reply.delta")) > 1
    header = audio_frames(introduce)[0][0]
    assert_is_speech(
        b"".join(data for _, data in audio_frames(introduce)), header["sample_rate"], min_seconds=0.5, max_seconds=30
    )
    assert reply_text(recall).strip()
    replies = await stored_replies()
    assert [(r.status, r.text) for r in replies] == [("complete", first), ("complete", reply_text(recall))]
    assert all(r.audio and r.first_text_ms is not None for r in replies)
    # Whether the model makes use of it depends on the model; that it is told is ours.
    told_first, told_second = local_model_messages
    assert earlier_turns(told_first) == []
    assert earlier_turns(told_second) == introduction_answered(replies[0].text.strip())
    assert told_second[-1] == {"role": "user", "content": QUESTION}


async def test_without_a_history_budget_the_local_model_is_told_nothing_earlier(
    conversation, user, settings, short_answers, local_model_messages, tone_engine
):
    """The control for the test above: the earlier turns come from the history, within its budget."""
    settings.VOICE_LLM_HISTORY_CHARS = 0
    await ask(conversation, user, INTRODUCTION, QUESTION)
    assert [r.status for r in await stored_replies()] == ["complete", "complete"]
    assert [earlier_turns(messages) for messages in local_model_messages] == [[], []]


async def test_a_missing_model_file_fails_the_reply_plainly(conversation, user, settings, tone_engine):
    settings.VOICE_RESPONDER = "local"
    settings.VOICE_LLM_MODEL_PATH = "/nonexistent/model.gguf"
    (frames,) = await ask(conversation, user, "Hello?")
    (error,) = events(frames, "error")
    assert error["code"] == "llm_unavailable" and "/nonexistent" not in error["message"]
    (reply,) = await stored_replies()
    assert (reply.status, reply.error_code) == ("failed", "llm_unavailable") and "/nonexistent" in reply.error


# --- openai: llama.cpp's own OpenAI-compatible server, with the bundled model ---------
@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "llama_cpp.server", "--model", str(local.bundled_model_path())),
                *("--host", "127.0.0.1", "--port", str(port), "--n_threads", "2", "--verbose", "False"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: answers_http(f"http://127.0.0.1:{port}/v1/models"), 60, "llama_cpp.server not ready")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


async def test_an_openai_compatible_server_answers_a_conversation(
    conversation, user, settings, short_answers, llama_server, tone_engine
):
    settings.VOICE_RESPONDER = "openai"
    settings.VOICE_LLM_BASE_URL = llama_server
    settings.VOICE_LLM_MODEL = "smollm2"
    # The second query goes with the first exchange as history: the real server takes it.
    introduce, recall = await ask(conversation, user, INTRODUCTION, QUESTION)
    assert reply_text(introduce).strip() and reply_text(recall).strip()
    assert len(events(introduce, "reply.delta")) > 1  # streamed, a delta per token
    replies = await stored_replies()
    assert [(r.status, r.text) for r in replies] == [("complete", reply_text(f)) for f in (introduce, recall)]
    assert all(r.audio for r in replies)


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
