"""Barge-in through the full ASGI stack: a new query (or a stop) cuts the reply before it short."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from voice.history import turns_before
from voice.models import Message
from voice.producers import producers, send_stop
from voice.protocol import ReplyStop
from voice.publishing import GroupPublisher
from voice.replies import ChatReply
from voice.responders import Turn
from voice.tests.helpers import (
    audio_frames,
    connect,
    done_for,
    events,
    eventually,
    first_audio,
    receive_frame,
    until,
    until_done,
)
from voice.turns import accept_query

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_new_query_interrupts_the_reply_in_production(conversation, user, gated_engine, recording_responder):
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "One. Two. Three."})
    old = await first_audio(tab)
    # The engine is stuck on sentence two: only an interruption ends this reply.
    await tab.send_json_to({"type": "query", "text": "Wait, a new question.", "message_id": old, "heard_ms": 50})
    frames = await until(tab, done_for(old))
    assert events(frames, "reply.done")[-1]["status"] == "interrupted"
    gated_engine.set()
    new_frames = await until_done(tab)
    new = events(new_frames, "reply.done")[0]
    assert new["status"] == "complete" and new["message_id"] != old
    assert len(audio_frames(new_frames)) == 1
    await tab.disconnect()

    replies = [m async for m in Message.objects.filter(role="assistant").order_by("pk")]
    assert [(r.status, r.heard_ms) for r in replies] == [("interrupted", 50), ("complete", None)]
    # The whole text is kept; the user heard the first sentence of it.
    assert replies[0].text == "One. Two. Three." and replies[0].heard_text == "One."
    assert await Message.objects.filter(role="user").acount() == 2
    # And the model is told what was heard, not what was written.
    assert recording_responder.histories[-1] == [Turn("user", "One. Two. Three."), Turn("assistant", "One.")]


async def test_a_reply_still_being_spoken_is_marked_as_cut_short(conversation, user, tone_engine):
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "First sentence. Second sentence."})
    reply_id = events(await until_done(tab), "reply.done")[0]["message_id"]
    # Produced in full (200 ms of audio), but the user had heard 60 ms of it.
    await tab.send_json_to({"type": "query", "text": "Next.", "message_id": reply_id, "heard_ms": 60})
    frames = await until_done(tab)
    changed = [e["message"] for e in events(frames, "message") if e["message"]["id"] == reply_id]
    assert changed == [{**changed[0], "status": "interrupted", "heard_ms": 60}]
    await tab.disconnect()
    reply = await Message.objects.aget(pk=reply_id)
    assert (reply.status, reply.heard_ms, reply.heard_text) == ("interrupted", 60, "First sentence.")


async def test_a_reply_heard_to_the_end_stays_complete(conversation, user, tone_engine):
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "Short."})
    reply_id = events(await until_done(tab), "reply.done")[0]["message_id"]
    await tab.send_json_to({"type": "query", "text": "Next.", "message_id": reply_id, "heard_ms": 100})
    await until_done(tab)
    await tab.disconnect()
    assert (await Message.objects.aget(pk=reply_id)).status == "complete"


async def test_a_query_from_another_tab_stops_the_reply_in_every_tab(conversation, user, gated_engine):
    asking = await connect(conversation, user)
    other = await connect(conversation, user)
    await asking.send_json_to({"type": "query", "text": "One. Two. Three."})
    old = await first_audio(asking)
    await other.send_json_to({"type": "query", "text": "From the other tab."})
    for tab in (asking, other):
        frames = await until(tab, done_for(old))
        assert events(frames, "reply.done")[-1]["status"] == "interrupted"
    # The tab that played it says how much it heard.
    await asking.send_json_to({"type": "heard", "message_id": old, "heard_ms": 80})
    gated_engine.set()
    await until_done(other)
    await asyncio.gather(asking.disconnect(), other.disconnect())
    reply = await Message.objects.aget(pk=old)
    assert (reply.status, reply.heard_ms) == ("interrupted", 80)


async def test_cancel_records_how_much_was_heard(conversation, user, gated_engine):
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "One. Two. Three."})
    reply_id = await first_audio(tab)
    await tab.send_json_to({"type": "cancel", "message_id": reply_id, "heard_ms": 30})
    frames = await until(tab, done_for(reply_id), seconds=5)
    assert events(frames, "reply.done")[-1]["status"] == "cancelled"
    await tab.disconnect()
    reply = await Message.objects.aget(pk=reply_id)
    assert (reply.status, reply.heard_ms, reply.heard_text) == ("cancelled", 30, "One.")


async def test_a_stop_that_comes_before_its_reply_is_set_up_still_stops_it(conversation, tone_engine):
    """A stop can reach this process between a reply's claim and its start: it is kept, and applied then."""
    layer = get_channel_layer()
    registry = producers(layer)
    channel = await registry.listen()
    _query, placeholder = await accept_query(conversation, "Say a lot, please.", "", None)
    assert await database_sync_to_async(placeholder.claim)("server:test", channel)
    await send_stop(layer, channel, ReplyStop(placeholder.pk, Message.Status.CANCELLED))
    await eventually(lambda: placeholder.pk in registry.early_stops)
    stored = await ChatReply(placeholder, GroupPublisher(layer, conversation.group_name)).run()
    assert (stored.status, stored.text) == (Message.Status.CANCELLED, "")


@pytest.mark.parametrize(
    "event",
    [
        {"type": "heard", "message_id": 1},
        {"type": "heard", "message_id": "1", "heard_ms": 10},
        {"type": "cancel", "message_id": 1, "heard_ms": -5},
        {"type": "query", "text": "Hi.", "message_id": 1, "heard_ms": True},
    ],
)
async def test_malformed_interruptions_get_an_error(conversation, user, tone_engine, event):
    tab = await connect(conversation, user)
    await tab.send_json_to(event)
    kind, error = await receive_frame(tab)
    assert (kind, error["type"], error["code"]) == ("event", "error", "bad_event")
    assert await Message.objects.acount() == 0
    await tab.disconnect()


# --- History ------------------------------------------------------------------------
def test_history_leaves_out_placeholders_and_failures_and_keeps_to_its_budget(conversation):
    def say(role, text, **fields):
        return Message.objects.create(conversation=conversation, role=role, text=text, **fields)

    say("user", "Oldest question, long enough to fall off.")
    say("assistant", "Oldest answer.")
    say("user", "What failed?")
    say("assistant", "Half an ans", status="failed")
    say("user", "And this?")
    say("assistant", "", status="streaming")  # a placeholder never produced
    say("user", "Cut short?")
    say(
        "assistant",
        "Heard this. Not this.",
        status="interrupted",
        heard_ms=10,
        segments=[[0, 11, 0, 500], [12, 21, 500, 900]],
    )
    query = say("user", "Now?")
    assert turns_before(query, budget_chars=1000) == [
        Turn("user", "Oldest question, long enough to fall off."),
        Turn("assistant", "Oldest answer."),
        Turn("user", "What failed?"),
        Turn("user", "And this?"),
        Turn("user", "Cut short?"),
        Turn("assistant", "Heard this."),
    ]
    # The oldest turns go first when the budget is short.
    assert turns_before(query, budget_chars=60) == [
        Turn("user", "What failed?"),
        Turn("user", "And this?"),
        Turn("user", "Cut short?"),
        Turn("assistant", "Heard this."),
    ]
