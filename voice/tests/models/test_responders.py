"""The local responder through the whole chat stack: llama.cpp in this process, with the bundled model."""

import pytest

from voice.responders import local
from voice.tests.asking import (
    INTRODUCTION,
    QUESTION,
    ask,
    earlier_turns,
    introduction_answered,
    reply_text,
    stored_replies,
)
from voice.tests.helpers import assert_is_speech, audio_frames, events

pytestmark = pytest.mark.django_db(transaction=True)


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
    settings.VOICE_LLM_HISTORY_TOKENS = 0  # the local model's budget, in its tokens
    await ask(conversation, user, INTRODUCTION, QUESTION)
    assert [r.status for r in await stored_replies()] == ["complete", "complete"]
    assert [earlier_turns(messages) for messages in local_model_messages] == [[], []]
