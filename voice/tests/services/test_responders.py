"""The openai responder against a real OpenAI-compatible server: llama.cpp's own, with the bundled model."""

import subprocess
import sys

import pytest

from voice.responders import local
from voice.tests.asking import INTRODUCTION, QUESTION, ask, reply_text, stored_replies
from voice.tests.helpers import events
from voice.tests.servers import answers_http, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


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
