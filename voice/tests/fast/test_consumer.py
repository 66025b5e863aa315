"""The chat socket end to end: ASGI stack, session auth, the database, test engines (models/ hears real Piper)."""

import asyncio
import base64
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from voice import protocol
from voice.models import Message
from voice.scheduling import CHARS_PER_SECOND
from voice.tests.engines import FailingEngine
from voice.tests.helpers import (
    audio_frames,
    chat_communicator,
    connect,
    events,
    eventually,
    receive_frame,
    session_headers,
    until_done,
)
from voice.tests.responders import LongResponder, LoopingResponder

pytestmark = pytest.mark.django_db(transaction=True)


# --- The whole flow -----------------------------------------------------------
async def test_first_audio_arrives_before_the_rest_is_synthesized(conversation, user, gated_engine):
    """The engine will not make sentence two until the client holds sentence one's audio."""
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "One. Two. Three."})
    async with asyncio.timeout(10):
        while (frame := await receive_frame(communicator))[0] != "audio":
            assert frame[1]["type"] != "reply.done", "reply finished without streaming audio"
    assert frame[1]["seq"] == 0
    gated_engine.set()
    frames = await until_done(communicator)
    assert len(audio_frames(frames)) == 2
    assert events(frames, "reply.done")[0]["status"] == "complete"
    await communicator.disconnect()


async def test_base64_mode_sends_audio_as_json(conversation, user, tone_engine):
    communicator = await connect(conversation, user, query="audio=base64")
    await communicator.send_json_to({"type": "query", "text": "First. Second."})
    frames = await until_done(communicator)
    assert audio_frames(frames) == []
    chunks = events(frames, "audio.chunk")
    assert [c["seq"] for c in chunks] == [0, 1]
    pcm = b"".join(base64.b64decode(c["data"]) for c in chunks)
    assert len(pcm) == 2 * 2 * 1600  # two sentences of 0.1 s at 16 kHz
    assert {c["format"] for c in chunks} == {"pcm_s16le"}
    await communicator.disconnect()


async def test_every_tab_hears_the_reply_but_only_the_asker_is_told_to_play(conversation, user, tone_engine):
    asking = await connect(conversation, user)
    watching = await connect(conversation, user)
    await asking.send_json_to({"type": "query", "text": "Hello both tabs."})
    asked, watched = await asyncio.gather(until_done(asking), until_done(watching))
    assert [e["type"] for e in events(asked)] == [e["type"] for e in events(watched)]
    assert len(audio_frames(asked)) == len(audio_frames(watched)) == 1
    assert [e["requested_here"] for e in events(asked, "message")] == [True, True, True]
    assert [e["requested_here"] for e in events(watched, "message")] == [False, False, False]
    await asking.disconnect()
    await watching.disconnect()


# --- Who may connect ----------------------------------------------------------
async def test_a_tab_hears_what_is_sent_the_moment_it_is_connected(conversation, user, monkeypatch):
    """It joins the conversation's group before the handshake completes, however slow the channel layer is."""
    layer = get_channel_layer()
    join = type(layer).group_add

    async def slow_join(self, group, channel):
        await asyncio.sleep(0.3)  # a Redis far away
        await join(self, group, channel)

    monkeypatch.setattr(type(layer), "group_add", slow_join)
    communicator = await connect(conversation, user)
    await layer.group_send(conversation.group_name, {**protocol.ReplyDelta(7, "Hello").to_event(), "origin": ""})
    assert await communicator.receive_json_from(timeout=2) == {"type": "reply.delta", "message_id": 7, "text": "Hello"}
    await communicator.disconnect()


async def test_anonymous_users_are_closed_with_4401(conversation):
    from voice.tests.helpers import ORIGIN

    communicator = chat_communicator(conversation.pk, [ORIGIN])
    connected, _ = await communicator.connect()
    assert connected  # accepted first, so the browser sees the reason
    assert await communicator.receive_output(5) == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("whose", ["someone_else", "nobody"])
async def test_other_peoples_conversations_are_closed_with_4403(conversation, other_user, whose):
    conversation_id = conversation.pk if whose == "someone_else" else conversation.pk + 1000
    headers = await sync_to_async(session_headers)(other_user)
    communicator = chat_communicator(conversation_id, headers)
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_output(5) == {"type": "websocket.close", "code": 4403}


@pytest.mark.parametrize("origin", [None, b"http://evil.example"])
async def test_foreign_or_missing_origins_are_refused(conversation, user, origin):
    headers = [h for h in await sync_to_async(session_headers)(user) if h[0] != b"origin"]
    if origin:
        headers.append((b"origin", origin))
    communicator = chat_communicator(conversation.pk, headers)
    connected, _ = await communicator.connect()
    assert not connected


# --- Bad input ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"text_data": "{not json"}, "bad_json"),
        ({"bytes_data": b"\x00\x01binary"}, "speech_not_started"),
        ({"text_data": "[1, 2]"}, "bad_event"),
        ({"text_data": '{"text": "no type"}'}, "bad_event"),
        ({"text_data": '{"type": "dance"}'}, "unknown_type"),
        ({"text_data": '{"type": "query"}'}, "empty_text"),
        ({"text_data": '{"type": "query", "text": "   \\n "}'}, "empty_text"),
        ({"text_data": '{"type": "query", "text": 42}'}, "empty_text"),
        ({"text_data": json.dumps({"type": "query", "text": "x" * 2001})}, "text_too_long"),
    ],
)
async def test_bad_input_gets_an_error_and_the_socket_stays_usable(conversation, user, tone_engine, frame, code):
    communicator = await connect(conversation, user)
    await communicator.send_to(**frame)
    kind, event = await receive_frame(communicator)
    assert kind == "event" and event["type"] == "error" and event["code"] == code
    assert event["message"]
    assert await Message.objects.filter(conversation=conversation).acount() == 0
    # Still open and working.
    await communicator.send_json_to({"type": "query", "text": "Still here?"})
    frames = await until_done(communicator)
    assert events(frames, "reply.done")[0]["status"] == "complete"
    await communicator.disconnect()


async def test_a_query_sent_again_after_a_reconnect_is_stored_once(conversation, user, tone_engine):
    first = await connect(conversation, user)
    await first.send_json_to({"type": "query", "text": "Only once.", "client_id": "q-1"})
    await until_done(first)
    await first.disconnect()
    # The page did not see the confirmation before its connection dropped: it sends again.
    second = await connect(conversation, user)
    await second.send_json_to({"type": "query", "text": "Only once.", "client_id": "q-1"})
    kind, event = await receive_frame(second)
    assert (kind, event["type"], event["requested_here"]) == ("event", "message", True)
    assert event["message"]["text"] == "Only once." and event["message"]["client_id"] == "q-1"
    assert await second.receive_nothing(0.3)
    await second.disconnect()
    assert [m.role async for m in Message.objects.all()] == ["user", "assistant"]


@pytest.mark.parametrize("client_id", ["", "has space", "x" * 65, 7])
async def test_a_malformed_client_id_is_refused(conversation, user, tone_engine, client_id):
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "Hi.", "client_id": client_id})
    _, event = await receive_frame(tab)
    assert event["code"] == "bad_event"
    await tab.disconnect()


async def test_the_query_limit_is_configurable(conversation, user, tone_engine, settings):
    settings.VOICE_MAX_QUERY_CHARS = 10
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "eleven char"})
    _, event = await receive_frame(communicator)
    assert event["code"] == "text_too_long" and "10" in event["message"]
    await communicator.disconnect()


# --- Failures keep the text ---------------------------------------------------
async def test_speech_failure_still_delivers_and_stores_the_text(conversation, user, settings):
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.FailingEngine"
    FailingEngine.calls = 0
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "Spoken. Not spoken. Not spoken either."})
    frames = await until_done(communicator)
    (error,) = events(frames, "error")
    assert error["code"] == "tts_unreachable" and "continues as text" in error["message"]
    assert "".join(d["text"] for d in events(frames, "reply.delta")) == "Spoken. Not spoken. Not spoken either."
    assert events(frames, "reply.done")[0]["status"] == "audio_failed"
    await communicator.disconnect()
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.text) == ("audio_failed", "Spoken. Not spoken. Not spoken either.")
    assert "went away" in reply.error
    assert reply.duration_ms == 100  # the sentence that was spoken is kept
    assert await Message.objects.filter(role="user").acount() == 1


async def test_an_unknown_engine_costs_the_audio_only(conversation, user, settings):
    settings.VOICE_TTS_ENGINE = "no.such.Engine"
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "Hello."})
    frames = await until_done(communicator)
    assert events(frames, "error")[0]["code"] == "tts_unavailable"
    assert audio_frames(frames) == []
    await communicator.disconnect()
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.text, bool(reply.audio)) == ("audio_failed", "Hello.", False)


async def test_a_failing_responder_keeps_the_query_and_the_text_so_far(conversation, user, tone_engine, settings):
    settings.VOICE_RESPONDER = "voice.tests.responders.BrokenResponder"
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "Tell me everything."})
    frames = await until_done(communicator)
    assert events(frames, "error")[0]["code"] == "reply_failed"
    assert events(frames, "reply.done")[0]["status"] == "failed"
    await communicator.disconnect()
    assert await Message.objects.filter(role="user", text="Tell me everything.").aexists()
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.text, reply.error_code) == ("failed", "Half a ", "reply_failed")
    assert "model crashed" in reply.error


async def test_cancel_stops_speech_and_stores_what_was_said(conversation, user, gated_engine):
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "One. Two. Three."})
    while (await receive_frame(communicator))[0] != "audio":
        pass
    await communicator.send_json_to({"type": "cancel"})
    frames = await until_done(communicator, seconds=5)  # the gate stays shut: cancel must not wait for it
    assert audio_frames(frames) == []
    assert events(frames, "reply.done")[0]["status"] == "cancelled"
    await communicator.disconnect()
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.duration_ms) == ("cancelled", 100)


async def test_a_reply_survives_its_tab_closing(conversation, user, gated_engine):
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "One. Two."})
    while (await receive_frame(communicator))[0] != "audio":
        pass
    await communicator.disconnect()
    gated_engine.set()  # only now can sentence two be spoken: nobody is watching
    reply = await eventually(lambda: Message.objects.exclude(status="streaming").filter(role="assistant").afirst())
    assert (reply.status, reply.duration_ms) == ("complete", 200)


# --- Replies sized for the ear (voice/cutoffs.py) ----------------------------------------------
async def ask_for_a_cut_reply(conversation, user, responder):
    """Ask; the frames up to reply.done, and the stored reply, which must be complete with what was said."""
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "Tell me about it."})
    frames = await until_done(communicator)
    await communicator.disconnect()
    reply = await Message.objects.aget(role="assistant")
    assert reply.status == "complete" and reply.error_code == ""
    # What was said, to the end: the stored text ends with the last segment spoken.
    assert reply.segments and reply.segments[-1][1] == len(reply.text)
    assert responder.text.startswith(reply.text)
    # The page was told, and shown the stored text, which replaces what streamed past the cut.
    (done,) = events(frames, "reply.done")
    final = events(frames, "message")[-1]["message"]
    assert (done["status"], done["cut"]) == ("complete", reply.cut)
    assert (final["text"], final["cut"]) == (reply.text, reply.cut)
    assert len("".join(d["text"] for d in events(frames, "reply.delta"))) > len(reply.text)
    # The model was stopped (its responder closed), not read to its end.
    assert responder.closed_early and responder.given < responder.words() // 2
    return reply


async def test_a_long_reply_ends_at_a_sentence_end_stored_as_said(conversation, user, tone_engine, settings):
    settings.VOICE_RESPONDER = "voice.tests.responders.LongResponder"
    settings.VOICE_REPLY_MAX_SECONDS = 10
    reply = await ask_for_a_cut_reply(conversation, user, LongResponder)
    assert reply.cut == "length" and reply.text.endswith(".")
    # About 10 s of speech: the sentence under way at the cap is finished (a sentence here is under 60 characters).
    assert 5 * CHARS_PER_SECOND < len(reply.text) <= 10 * CHARS_PER_SECOND + 60


async def test_a_looping_reply_stops_before_the_loop(conversation, user, tone_engine, settings):
    settings.VOICE_RESPONDER = "voice.tests.responders.LoopingResponder"
    reply = await ask_for_a_cut_reply(conversation, user, LoopingResponder)
    assert (reply.cut, reply.text) == ("repetition", "A port is a number that identifies a program.")


def stored_audio_files(directory: str = "voice/audio") -> list[str]:
    from django.core.files.storage import default_storage

    if not default_storage.exists(directory):
        return []
    folders, files = default_storage.listdir(directory)
    return [f"{directory}/{name}" for name in files] + [
        path for folder in folders for path in stored_audio_files(f"{directory}/{folder}")
    ]


async def test_a_conversation_deleted_while_its_reply_is_spoken_leaves_no_audio_behind(
    conversation, user, gated_engine
):
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": "One. Two."})
    while (await receive_frame(communicator))[0] != "audio":
        pass
    await conversation.adelete()
    gated_engine.set()  # the rest is spoken, and its audio would be stored now
    await until_done(communicator)
    await communicator.disconnect()
    assert not await Message.objects.aexists()
    assert await sync_to_async(stored_audio_files)() == []
