"""Replies begun before their query is stored (voice.drafts): used when they fit, otherwise never seen."""

import asyncio

import pytest
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from voice.metrics import DRAFTS
from voice.models import Message
from voice.tests.helpers import audio_frames, connect, events, eventually, first_audio, until_done
from voice.tests.responders import HangingResponder
from voice.turns import QueryKeptButUnavailable, Turns

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def drafting(settings):
    settings.VOICE_HANDSFREE_DRAFT_REPLIES = True


def counted(outcome: str) -> float:
    return DRAFTS.labels(outcome)._value.get()


async def earlier_turn(conversation, text: str = "An earlier question.") -> None:
    query = await conversation.messages.acreate(role=Message.Role.USER, text=text)
    await conversation.messages.acreate(
        role=Message.Role.ASSISTANT, text="An earlier answer.", status=Message.Status.COMPLETE, reply_to=query
    )


async def replies(conversation) -> list[Message]:
    return [m async for m in conversation.messages.filter(role=Message.Role.ASSISTANT).order_by("pk")]


async def test_a_draft_that_fits_is_the_reply_and_the_model_is_asked_once(
    conversation, user, tone_engine, recording_responder
):
    await earlier_turn(conversation)
    tab = await connect(conversation, user)
    turns = Turns(conversation, get_channel_layer(), origin="")
    used = counted("used")
    draft = turns.draft("How are you today?")
    await draft.task  # the whole reply is written and said before its question is stored
    assert await tab.receive_nothing(timeout=0.2)  # nobody heard any of it
    assert await conversation.messages.acount() == 2

    await turns.ask("How are you today?", draft=draft)
    frames = await until_done(tab)
    await tab.disconnect()
    assert recording_responder.queries == ["How are you today?"]
    assert [[turn.text for turn in history] for history in recording_responder.histories] == [
        ["An earlier question.", "An earlier answer."]
    ]
    assert "".join(e["text"] for e in events(frames, "reply.delta")) == "How are you today?"
    assert len(audio_frames(frames)) >= 1
    reply = (await replies(conversation))[-1]
    assert (reply.status, reply.text) == ("complete", "How are you today?")
    assert counted("used") == used + 1


@pytest.mark.parametrize(
    "change", ["other words", "a message stored meanwhile", "an earlier reply cut short meanwhile", "another speed"]
)
async def test_a_draft_that_does_not_fit_is_dropped_and_the_reply_made_anew(
    conversation, user, tone_engine, recording_responder, change
):
    earlier_query = await conversation.messages.acreate(role=Message.Role.USER, text="Tell me two things.")
    earlier = await conversation.messages.acreate(
        role=Message.Role.ASSISTANT,
        text="One thing. Another thing.",
        status=Message.Status.COMPLETE,
        reply_to=earlier_query,
        segments=[[0, 10, 0, 900], [11, 25, 900, 2000]],
    )
    tab = await connect(conversation, user)
    turns = Turns(conversation, get_channel_layer(), origin="")
    discarded = counted("discarded")
    draft = turns.draft("Remind me to call.")
    await draft.task
    asked = "Remind me to call."
    if change == "other words":
        asked = "Remind me to call my sister."
    elif change == "a message stored meanwhile":
        await earlier_turn(conversation, "Typed in another tab.")
    elif change == "an earlier reply cut short meanwhile":  # another tab says it stopped it after one thing
        earlier.status, earlier.heard_ms = Message.Status.INTERRUPTED, 500
        await earlier.asave()
    else:
        await conversation.__class__.objects.filter(pk=conversation.pk).aupdate(speed=1.25)
    await turns.ask(asked, draft=draft)
    frames = await until_done(tab)
    await tab.disconnect()
    assert recording_responder.queries == ["Remind me to call.", asked]
    assert "".join(e["text"] for e in events(frames, "reply.delta")) == asked
    assert (await replies(conversation))[-1].text == asked
    assert counted("discarded") == discarded + 1


async def test_no_draft_is_used_while_an_earlier_reply_is_still_being_stored(
    conversation, user, tone_engine, recording_responder
):
    query = await conversation.messages.acreate(role=Message.Role.USER, text="An earlier question.")
    earlier = await conversation.messages.acreate(
        role=Message.Role.ASSISTANT, text="An earl", status=Message.Status.STREAMING, reply_to=query
    )
    tab = await connect(conversation, user)
    turns = Turns(conversation, get_channel_layer(), origin="")
    unusable = counted("unusable")
    draft = turns.draft("And then?")
    await draft.task  # it read no history: what was heard of the earlier reply is not known yet
    earlier.status, earlier.heard_ms = Message.Status.INTERRUPTED, 0
    await earlier.asave()
    await turns.ask("And then?", draft=draft)
    await until_done(tab)
    await tab.disconnect()
    assert recording_responder.queries == ["And then?"]  # asked anew, not by the draft
    assert counted("unusable") == unusable + 1


async def test_an_abandoned_draft_stops_and_leaves_nothing(conversation, user, tone_engine, settings):
    settings.VOICE_RESPONDER = "voice.tests.responders.HangingResponder"  # a sentence, then never a word more
    tab = await connect(conversation, user)
    turns = Turns(conversation, get_channel_layer(), origin="")
    discarded = counted("discarded")
    written = HangingResponder.written
    draft = turns.draft("I need to buy some")
    await eventually(lambda: HangingResponder.written > written)  # it is under way when the person goes on
    draft.abandon()
    await asyncio.wait([draft.task], timeout=10)
    assert draft.task.cancelled()
    assert await tab.receive_nothing(timeout=0.2)
    assert counted("discarded") == discarded + 1
    draft.abandon()  # counted once
    assert counted("discarded") == discarded + 1
    await tab.disconnect()


async def test_a_reply_that_took_a_draft_stops_it_when_stopped(conversation, user, tone_engine, settings):
    settings.VOICE_RESPONDER = "voice.tests.responders.HangingResponder"
    tab = await connect(conversation, user)
    turns = Turns(conversation, get_channel_layer(), origin="")
    written = HangingResponder.written
    draft = turns.draft("Tell me a story.")
    await eventually(lambda: HangingResponder.written > written)  # under way before its question is stored
    await turns.ask("Tell me a story.", draft=draft)
    await first_audio(tab)
    await tab.send_json_to({"type": "cancel"})
    frames = await until_done(tab)
    await tab.disconnect()
    assert events(frames, "reply.done")[-1]["status"] == "cancelled"
    await asyncio.wait([draft.task], timeout=10)
    assert draft.task.cancelled()
    assert (await replies(conversation))[-1].text.strip() == "A first sentence."


class LayerDown:
    """A channel layer that cannot be reached."""

    async def group_send(self, group, message):
        raise ChannelFull()


async def test_a_draft_taken_for_a_query_the_tabs_cannot_hear_of_is_stopped_and_the_query_kept(
    conversation, user, tone_engine, settings
):
    settings.VOICE_RESPONDER = "voice.tests.responders.HangingResponder"
    turns = Turns(conversation, LayerDown(), origin="")
    written = HangingResponder.written
    draft = turns.draft("Are you there?")
    await eventually(lambda: HangingResponder.written > written)
    with pytest.raises(QueryKeptButUnavailable):
        await turns.ask("Are you there?", draft=draft)
    await asyncio.wait([draft.task], timeout=10)
    assert draft.task.cancelled()  # no reply took it over: it stops, it does not run on for nobody
    query = await Message.objects.aget(role=Message.Role.USER)
    assert query.text == "Are you there?"
    assert (await Message.objects.aget(reply_to=query)).status == Message.Status.FAILED
