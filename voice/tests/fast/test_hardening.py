"""Bad input, floods and failures through the full ASGI stack: a clear answer, nothing lost, nothing leaked."""

import asyncio
import json
import logging
from datetime import timedelta

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.utils import timezone

from voice import protocol, ratelimit
from voice.exceptions import TranscriberBusy
from voice.listening import Listening
from voice.models import ApiKey, Conversation, Message
from voice.stt.service import transcription
from voice.tests.helpers import (
    chat_communicator,
    connect,
    events,
    eventually,
    receive_frame,
    session_headers,
    until_done,
)
from voice.tests.transcribers import GatedTranscriber, SecondsTranscriber
from voice.turns import Turns
from voiceproject.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


# --- The chat socket ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "query", "text": "lone \\ud800 surrogate"}', "bad_text"),
        ('{"type": "query", "text": "nul \\u0000 byte"}', "bad_text"),
        ("[" * 20_000 + "]" * 20_000, "bad_json"),
        ('{"type": "query", "text": ' + "[" * 15_000 + "]" * 15_000 + "}", "bad_json"),
        ('{"type": "query", "text": "' + "x" * 70_000 + '"}', "frame_too_large"),
        (b"\x00" * 70_000, "frame_too_large"),  # audio, even without an utterance
        ('{"type": "query", "text": {"nested": ["object"]}}', "empty_text"),
    ],
)
async def test_unstorable_input_is_refused_and_nothing_stored_is_lost(conversation, user, tone_engine, frame, code):
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "Stored before."})
    await until_done(tab)
    await tab.send_to(**{"bytes_data" if isinstance(frame, bytes) else "text_data": frame})
    kind, event = await receive_frame(tab)
    assert (kind, event["type"], event["code"]) == ("event", "error", code)
    # The socket stays open and usable.
    await tab.send_json_to({"type": "query", "text": "Stored after."})
    assert events(await until_done(tab), "reply.done")[0]["status"] == "complete"
    await tab.disconnect()
    stored = [m.text async for m in Message.objects.filter(role="user").order_by("pk")]
    assert stored == ["Stored before.", "Stored after."]


@pytest.mark.parametrize(
    "path",
    ["/ws/chat/abc/", "/ws/chat/-1/", "/ws/chat/0/", "/ws/chat/99999999999999999999999/", "/ws/nothing/", "/"],
)
async def test_sockets_to_unknown_paths_are_refused_without_a_traceback(user, path, caplog):
    headers = await sync_to_async(session_headers)(user)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected  # accepted first, so the client sees the reason
    assert await communicator.receive_output(5) == {"type": "websocket.close", "code": 4404}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_api_sockets_to_unknown_paths_are_refused_too(caplog):
    for path in ["/v1/ws/", "/v1/ws/" + "x" * 200 + "/", "/v1/ws/bad token/"]:
        communicator = WebsocketCommunicator(application, path)
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_output(5))["type"] == "websocket.close"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_flood_of_queries_is_rate_limited_per_user(conversation, user, tone_engine, settings):
    settings.VOICE_CHAT_RATE_LIMIT = 3
    first, second = await connect(conversation, user), await connect(conversation, user)
    for n in range(3):
        await (first if n % 2 else second).send_json_to({"type": "query", "text": f"Query {n}."})
        await until_done(first)
    # The fourth in a minute, from whichever tab, is refused and not stored.
    await first.send_json_to({"type": "query", "text": "One too many."})
    while (frame := await receive_frame(first))[0] != "event" or frame[1]["type"] != "error":
        pass
    assert frame[1]["code"] == "rate_limited" and "3" in frame[1]["message"]
    await first.disconnect()
    await second.disconnect()
    assert not await Message.objects.filter(text="One too many.").aexists()
    assert await Message.objects.filter(role="user").acount() == 3


async def test_one_account_writes_only_its_share_of_replies_at_once(conversation, user, tone_engine, settings):
    settings.VOICE_USER_REPLIES = 2
    for title in ("one", "two"):
        elsewhere = await Conversation.objects.acreate(owner=user, title=title)
        await Message.objects.acreate(conversation=elsewhere, role="assistant", text="Long", status="streaming")
    # This conversation's own reply does not count: a new query interrupts it.
    await Message.objects.acreate(conversation=conversation, role="assistant", text="Half", status="streaming")
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "One too many."})
    (kind, error) = await receive_frame(tab)
    assert (kind, error["code"]) == ("event", "too_many_replies") and "2 of your replies" in error["message"]
    assert not await Message.objects.filter(text="One too many.").aexists()
    settings.VOICE_USER_REPLIES = 3
    await tab.send_json_to({"type": "query", "text": "Now there is room."})
    await until_done(tab)
    await tab.disconnect()
    assert await Message.objects.filter(text="Now there is room.").aexists()


async def test_one_account_holds_only_so_many_sockets(conversation, user, settings):
    settings.VOICE_SOCKETS_PER_USER = 2
    tabs = [await connect(conversation, user) for _ in range(2)]
    extra = chat_communicator(conversation.pk, await sync_to_async(session_headers)(user))
    connected, _ = await extra.connect()
    assert connected  # accepted first, so that the page sees why
    assert await extra.receive_output(5) == {"type": "websocket.close", "code": protocol.Close.TOO_MANY_SOCKETS}
    await tabs.pop().disconnect()
    tabs.append(await connect(conversation, user))  # one closed: there is room again
    assert await tabs[-1].receive_nothing(timeout=0.3)  # and it stays open
    for tab in tabs:
        await tab.disconnect()


async def test_requests_at_the_same_moment_each_count():
    allowed = await asyncio.gather(*(ratelimit.aallow("burst:1", 3) for _ in range(12)))
    assert sorted(allowed) == [False] * 9 + [True] * 3


async def test_a_flood_of_stops_is_refused_before_it_costs_database_work(conversation, user, settings, monkeypatch):
    settings.VOICE_CONTROL_RATE_LIMIT = 3
    stops = []
    real_stop = Turns.stop

    async def counted_stop(self, *args, **kwargs):
        stops.append(args)
        return await real_stop(self, *args, **kwargs)

    monkeypatch.setattr(Turns, "stop", counted_stop)
    first, second = await connect(conversation, user), await connect(conversation, user)
    for n in range(4):
        await (first if n % 2 else second).send_json_to({"type": "cancel"})
    # The fourth in a minute, from either tab, is refused with a plain sentence, and nothing is done for it.
    while (frame := await receive_frame(first))[0] != "event" or frame[1]["type"] != "error":
        pass
    assert frame[1]["code"] == "control_rate_limited" and "3 stops" in frame[1]["message"]
    await first.disconnect()
    await second.disconnect()
    assert len(stops) == 3


SECONDS = "voice.tests.transcribers.SecondsTranscriber"
SILENCE = bytes(16000)  # half a second
LOUD = np.full(8000, 8000, dtype="<i2").tobytes()  # half a second of sound: transcribed, never skipped as silence


@pytest.fixture
def gated_transcriber(settings):
    """Transcriptions in threads of this process, each waiting until the test opens ``GatedTranscriber.gate``."""
    settings.VOICE_STT_ENGINE, settings.VOICE_STT_PROCESSES = "voice.tests.transcribers.GatedTranscriber", 0
    GatedTranscriber.gate.clear()
    GatedTranscriber.started.clear()
    yield GatedTranscriber
    GatedTranscriber.gate.set()


async def test_a_flood_of_utterances_is_refused_before_it_costs_transcriptions(conversation, user, settings):
    settings.VOICE_STT_ENGINE, settings.VOICE_STT_PROCESSES = SECONDS, 0
    settings.VOICE_SPEECH_RATE_LIMIT = 3
    SecondsTranscriber.calls = 0
    first, second = await connect(conversation, user), await connect(conversation, user)
    for n in range(5):
        tab = first if n % 2 else second
        await tab.send_json_to({"type": "speech.start", "format": "pcm_s16le", "sample_rate": 16000})
        await tab.send_to(bytes_data=SILENCE)
        await tab.send_json_to({"type": "speech.end"})
        (kind, error) = await receive_frame(tab)
        # Utterances without words count too: the fourth in a minute, from either tab, is refused.
        assert (kind, error["code"]) == ("event", "no_speech" if n < 3 else "speech_rate_limited")
    assert "3 utterances" in error["message"]
    # Its audio and speech.end are dropped quietly; no transcription was spent on refused ones.
    assert await first.receive_nothing(0.2) and await second.receive_nothing(0.2)
    assert SecondsTranscriber.calls == 3
    await first.disconnect()
    await second.disconnect()
    assert not await Message.objects.aexists()


async def test_transcriptions_past_the_queue_limit_are_refused_at_once(settings, gated_transcriber):
    settings.VOICE_STT_QUEUE_LIMIT = 2
    service = transcription()
    try:
        running = asyncio.create_task(service.transcribe(LOUD))
        await eventually(GatedTranscriber.started.is_set)
        waiting = [asyncio.create_task(service.transcribe(LOUD)) for _ in range(2)]
        await eventually(lambda: len(service.pool.queue) == 2)
        with pytest.raises(TranscriberBusy) as refused:
            await service.transcribe(LOUD)
        assert refused.value.code == "stt_busy" and "busy" in refused.value.public_message
    finally:
        GatedTranscriber.gate.set()
    # What was queued is still heard.
    assert [t.text for t in await asyncio.gather(running, *waiting)] == ["0.5 seconds"] * 3


async def test_one_account_holds_only_its_share_of_transcriptions(settings, gated_transcriber):
    settings.VOICE_STT_USER_JOBS = 2
    service = transcription()
    try:
        held = [asyncio.create_task(service.transcribe(LOUD, owner="user:1")) for _ in range(2)]
        await eventually(lambda: GatedTranscriber.started.is_set() and len(service.pool.queue) == 1)
        with pytest.raises(TranscriberBusy) as refused:
            await service.transcribe(LOUD, owner="user:1")
        assert "Your other tabs" in refused.value.public_message
        other = asyncio.create_task(service.transcribe(LOUD, owner="user:2"))  # another account still gets in
        await eventually(lambda: len(service.pool.queue) == 2)
    finally:
        GatedTranscriber.gate.set()
    assert [t.text for t in await asyncio.gather(*held, other)] == ["0.5 seconds"] * 3
    assert not service._held  # given back: the account may speak again
    assert (await service.transcribe(LOUD, owner="user:1")).text == "0.5 seconds"


async def test_one_accounts_tabs_share_its_transcriptions(conversation, user, tone_engine, settings, gated_transcriber):
    settings.VOICE_STT_USER_JOBS = 1
    first, second = await connect(conversation, user), await connect(conversation, user)
    try:
        for tab in (first, second):
            await tab.send_json_to({"type": "speech.start", "format": "pcm_s16le", "sample_rate": 16000})
            await tab.send_to(bytes_data=LOUD)
            await tab.send_json_to({"type": "speech.end"})
            if tab is first:
                await eventually(GatedTranscriber.started.is_set)
        # The first tab's words are being heard: the same account's second tab waits its turn, told so at once.
        (kind, error) = await receive_frame(second)
        assert (kind, error["code"]) == ("event", "stt_busy") and "Your other tabs" in error["message"]
    finally:
        GatedTranscriber.gate.set()
    frames = await until_done(first)
    assert events(frames, "message")[0]["message"]["text"] == "0.5 seconds"
    await first.disconnect()
    await second.disconnect()


async def test_push_to_talk_partials_wait_while_other_transcriptions_queue(settings, gated_transcriber):
    settings.VOICE_STT_PARTIAL_SECONDS = 1.0
    service = transcription()
    sent = []

    async def send(event):
        sent.append(event)

    listening = Listening(send)
    try:
        running = asyncio.create_task(service.transcribe(LOUD))
        await eventually(GatedTranscriber.started.is_set)
        waiting = asyncio.create_task(service.transcribe(LOUD))
        await eventually(lambda: len(service.pool.queue) == 1)
        listening.add(LOUD * 4)  # two seconds: a partial is due, and others' words wait
        assert listening._partial is None
    finally:
        GatedTranscriber.gate.set()
    await asyncio.gather(running, waiting)
    listening.add(LOUD * 2)  # nothing waits now: the partial goes
    await eventually(lambda: sent)
    assert sent[0].text == "3.0 seconds" and not sent[0].final
    listening.cancel()


# --- Errors never leak ------------------------------------------------------------------
async def test_engine_errors_reach_clients_as_a_code_and_a_plain_sentence(conversation, user, settings):
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.LeakyEngine"
    watching = await connect(conversation, user)
    asking = await connect(conversation, user)
    await asking.send_json_to({"type": "query", "text": "Say something."})
    for tab in (asking, watching):
        frames = await until_done(tab)
        (error,) = events(frames, "error")
        assert error == {
            "type": "error",
            "code": "tts_failed",
            "message": "Speech failed; the reply continues as text.",
            "message_id": error["message_id"],
        }
        assert "sk-leak" not in json.dumps(frames, default=str) and "/srv/models" not in json.dumps(frames, default=str)
        await tab.disconnect()
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.error_code) == ("audio_failed", "tts_failed")
    assert "sk-leak-9876" in reply.error  # for staff, in the admin


async def test_a_storage_failure_keeps_the_text_and_says_so_plainly(conversation, user, tone_engine, settings):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "voice.tests.storage.BrokenStorage"}}
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "Keep my words."})
    frames = await until_done(tab)
    await tab.disconnect()
    assert events(frames, "reply.done")[0]["status"] == "audio_failed"
    reply = await Message.objects.aget(role="assistant")
    assert (reply.text, reply.error_code, bool(reply.audio)) == ("Keep my words.", "audio_not_stored", False)
    assert "bucket-secret" in reply.error
    assert "bucket-secret" not in json.dumps(events(frames), default=str)


# --- The speech API -----------------------------------------------------------------------
SPEECH = "/v1/audio/speech"


@pytest.fixture
def api_key(user):
    return ApiKey.issue(user, "tests")[1]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "Hi.", "voice": ["alloy"]}, "voice"),
        ({"input": "Hi.", "voice": {"id": "alloy"}}, "voice"),
        ({"input": "Hi.", "response_format": ["wav"]}, "response_format"),
        ({"input": "Hi.", "speed": True}, "speed"),
        ({"input": "Hi.", "speed": [1]}, "speed"),
        ({"input": ["Hi."]}, "input"),
        ({"input": "nul \x00 byte"}, "input"),
        ({"input": "lone \ud800 surrogate"}, "input"),
    ],
)
def test_speech_api_rejects_wrong_types_with_openai_errors(client, api_key, body, param):
    payload = json.dumps(body).encode()  # json escapes the lone surrogate as \\ud800
    response = client.post(SPEECH, payload, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_speech_api_answers_with_an_error_status_when_synthesis_fails_first(client, api_key, settings):
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.FailingFirstEngine"
    response = client.post(
        SPEECH, {"input": "Hello."}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_key}"
    )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "tts_unreachable"
    assert "10.1.2.3" not in response.content.decode()


@pytest.mark.parametrize(
    ("engine", "voice", "code"),
    [
        ("voice.tests.engines.FailingFirstEngine", "a440", "tts_unreachable"),
        ("voice.tests.engines.ToneEngine", "removed-since-the-token-was-issued", "unknown_voice"),
    ],
)
async def test_the_token_socket_reports_a_failed_synthesis_and_closes(user, settings, engine, voice, code):
    from voice.models import SpeechToken

    settings.VOICE_TTS_ENGINE = engine
    token = await SpeechToken.objects.acreate(
        token="t" * 20, user=user, text="Hello.", voice=voice, expires_at=timezone.now() + timedelta(minutes=1)
    )
    communicator = WebsocketCommunicator(application, f"/v1/ws/{token.token}")
    connected, _ = await communicator.connect()
    assert connected
    messages = []
    while (output := await communicator.receive_output(5))["type"] != "websocket.close":
        messages.append(json.loads(output["text"]))
    assert messages[-1]["error"]["code"] == code
    assert "10.1.2.3" not in json.dumps(messages)


# --- Nothing stays stuck -------------------------------------------------------------------
def test_finalize_replies_finalizes_only_abandoned_replies(conversation, capsys):
    stale = Message.objects.create(
        conversation=conversation,
        role="assistant",
        text="Said so far.",
        status="streaming",
        produced_by="worker:elsewhere:1",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    alive = Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        produced_by="worker:elsewhere:2",
        heartbeat_at=timezone.now(),
    )
    call_command("finalize_replies")
    assert "1 reply(s) finalized" in capsys.readouterr().out
    stale.refresh_from_db()
    alive.refresh_from_db()
    assert (stale.status, stale.text, stale.error_code) == ("interrupted", "Said so far.", "producer_gone")
    assert alive.status == "streaming"
    call_command("finalize_replies", "--all")
    alive.refresh_from_db()
    assert alive.status == "interrupted"


def test_a_reply_of_a_dead_process_on_this_machine_is_finalized_at_once(conversation):
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        produced_by=f"server:{socket.gethostname()}:{gone.stdout.strip()}",
        heartbeat_at=timezone.now(),  # fresh: only the dead process gives it away
    )
    call_command("finalize_replies")
    reply.refresh_from_db()
    assert reply.status == "interrupted"


# --- Health ---------------------------------------------------------------------------------
def test_health_says_ready_only_once_warmed_up(client):
    from voice import lifecycle

    lifecycle.warmed.clear()
    try:
        assert client.get("/health").status_code == 503
        lifecycle.status["speech"] = "ok"
        lifecycle.warmed.set()
        response = client.get("/health")
        assert response.status_code == 200 and response.json() == {"ready": True, "steps": {"speech": "ok"}}
    finally:
        lifecycle.warmed.set()
        lifecycle.status.clear()
