"""A conversation past its history budget, through the chat socket with the real local model.

Its history was written before (as by another process, or before a restart):
the first turn reads it once, trimmed to the budget in the model's tokens; the
next reads only its question. ``reply.done`` says so (``prompt_tokens_read``,
``model_memory``), and the stored conversation is exactly what was said.
"""

import pytest
from asgiref.sync import sync_to_async

from voice.models import Message
from voice.tests.helpers import connect, events, until_done

pytestmark = pytest.mark.django_db(transaction=True)

# Dense in numbers (about three characters a token): a budget in characters would overflow the model's context.
ANSWER = "The codes were " + ", ".join(f"{n * 7919 % 10007:05d}" for n in range(30)) + "."


@pytest.fixture
def local_model(settings, tone_engine):
    settings.VOICE_RESPONDER = "local"
    settings.VOICE_LLM_MAX_TOKENS = 16
    settings.VOICE_LLM_HISTORY_TOKENS = 400
    settings.VOICE_LLM_HISTORY_CHARS = 100_000  # the old budget in characters, far past the context


@sync_to_async
def store_history(conversation, pairs: int) -> int:
    for n in range(pairs):
        query = Message.objects.create(conversation=conversation, role="user", text=f"Read me the codes of box {n}.")
        Message.objects.create(conversation=conversation, role="assistant", text=ANSWER, reply_to=query)
    return conversation.messages.count()


async def ask(communicator, text: str) -> tuple[dict, list[dict]]:
    """The reply's reply.done, and the queued events that came before its first words."""
    await communicator.send_json_to({"type": "query", "text": text})
    frames = await until_done(communicator, seconds=120)
    (done,) = events(frames, "reply.done")
    words = next((i for i, f in enumerate(frames) if f[0] == "event" and f[1]["type"] == "reply.delta"), len(frames))
    return done, events(frames[:words], "queued")


async def test_past_its_budget_a_conversation_is_read_once_then_only_its_new_questions(conversation, user, local_model):
    stored = await store_history(conversation, pairs=12)  # about 2,500 tokens: over the whole context
    communicator = await connect(conversation, user)
    first, reading = await ask(communicator, "Which box came first?")
    (second, told), (third, _) = await ask(communicator, "Thank you."), await ask(communicator, "And the last box?")
    assert not told  # a continuing turn reads a few tokens: nothing to wait for
    await communicator.disconnect()

    for done in (first, second, third):
        assert done["status"] == "complete", done  # never llm_context: the history was trimmed to fit
        assert done["metrics"]["prompt_tokens"] <= 400
    assert first["metrics"]["model_memory"] == "cold"
    # Reading a whole history takes a while, and the page is told so before the first words.
    assert reading and reading[0]["position"] == 0 and reading[0]["expected_wait_ms"] > 0
    assert first["metrics"]["prompt_tokens_read"] > 200  # its history, read once
    for done in (second, third):
        assert done["metrics"]["model_memory"] == "slot"
        # The question, its chat markup and the end of the reply before: a few tokens, never the history.
        assert done["metrics"]["prompt_tokens_read"] <= 40, done["metrics"]
    # What is stored is what was said: the model's memory changed nothing of it.
    assert await sync_to_async(conversation.messages.count)() == stored + 6
