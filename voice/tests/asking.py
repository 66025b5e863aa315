"""A conversation of queries over the chat socket, and what a model was told: the responder tests of every tier."""

from asgiref.sync import sync_to_async

from voice.models import Message
from voice.tests.helpers import connect, events, until_done


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
