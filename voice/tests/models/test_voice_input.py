"""Voice input through the chat socket: our own Piper voice, streamed as 16 kHz PCM, heard by Whisper in its process."""

import asyncio
import io
import wave

import pytest

from bench.stt import spoken, words
from voice.models import Message
from voice.tests.helpers import audio_frames, connect, done_for, events, receive_frame, until, until_done

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What time does the library close on Saturday?"
START = {"type": "speech.start", "format": "pcm_s16le", "sample_rate": 16000}
FRAME = 3200  # 100 ms


@pytest.fixture(scope="module")
def question() -> bytes:
    return spoken(QUESTION)


async def say(tab, pcm: bytes, start: dict | None = None, end: str = "speech.end") -> None:
    await tab.send_json_to(start or START)
    for offset in range(0, len(pcm), FRAME):
        await tab.send_to(bytes_data=pcm[offset : offset + FRAME])
    await tab.send_json_to({"type": end})


def transcripts(frames) -> list[dict]:
    return events(frames, "transcript")


async def test_a_spoken_question_is_transcribed_stored_and_answered(conversation, user, tone_engine, question):
    tab = await connect(conversation, user)
    await say(tab, question)
    frames = await until_done(tab, seconds=60)
    await tab.disconnect()
    final = [t for t in transcripts(frames) if t["final"]]
    assert len(final) == 1 and words(final[0]["text"]) == words(QUESTION)
    stored = events(frames, "message")[0]["message"]
    assert (stored["role"], stored["text"], stored["is_voice"]) == ("user", final[0]["text"], True)
    assert stored["audio_url"] == f"/messages/{stored['id']}/audio/"
    # Answered exactly like a typed query (read aloud: the question comes back, spoken).
    assert events(frames, "reply.done")[0]["status"] == "complete" and audio_frames(frames)
    query = await Message.objects.aget(pk=stored["id"])
    with wave.open(io.BytesIO(await asyncio.to_thread(lambda: query.audio.open("rb").read()))) as recording:
        assert (recording.getframerate(), recording.getnchannels(), recording.getsampwidth()) == (16000, 1, 2)
        assert recording.readframes(recording.getnframes()) == question
    assert query.duration_ms == round(len(question) / 32)


async def test_partial_transcripts_come_while_the_person_speaks(conversation, user, tone_engine, question, settings):
    settings.VOICE_STT_PARTIAL_SECONDS = 1.0
    tab = await connect(conversation, user)
    await say(tab, question)
    frames = await until_done(tab, seconds=60)
    await tab.disconnect()
    said = transcripts(frames)
    assert [t["final"] for t in said][-1] is True and not all(t["final"] for t in said)
    partial = next(t for t in said if not t["final"])
    assert partial["text"] and set(words(partial["text"])) & set(words(QUESTION))
    # Partials go to the speaking tab, before the final; nothing is stored for them.
    assert said.index(partial) < len(said) - 1
    assert await Message.objects.filter(role="user").acount() == 1


async def test_silence_is_not_a_question(conversation, user, tone_engine):
    tab = await connect(conversation, user)
    await say(tab, bytes(16000 * 2 * 2))  # two seconds of nothing
    kind, error = await receive_frame(tab, seconds=30)
    assert (kind, error["type"], error["code"], error["message"]) == (
        "event",
        "error",
        "no_speech",
        "I didn't catch that.",
    )
    assert await Message.objects.acount() == 0
    await tab.send_json_to({"type": "query", "text": "Still listening?"})
    assert events(await until_done(tab), "reply.done")[0]["status"] == "complete"
    await tab.disconnect()


@pytest.mark.parametrize(
    ("start", "code"),
    [
        ({**START, "sample_rate": 44100}, "bad_audio_format"),
        ({**START, "format": "opus"}, "bad_audio_format"),
        ({**START, "channels": 2}, "bad_audio_format"),
    ],
)
async def test_an_unusable_format_is_refused(conversation, user, tone_engine, start, code):
    tab = await connect(conversation, user)
    await tab.send_json_to(start)
    _kind, error = await receive_frame(tab)
    assert error["code"] == code
    await tab.disconnect()


async def test_audio_without_speech_start_is_refused_once(conversation, user, tone_engine, question):
    tab = await connect(conversation, user)
    for offset in range(0, 5 * FRAME, FRAME):
        await tab.send_to(bytes_data=question[offset : offset + FRAME])
    _kind, error = await receive_frame(tab)
    assert error["code"] == "speech_not_started"
    assert await tab.receive_nothing(0.3)  # one error, not one per frame
    await tab.send_json_to({"type": "speech.end"})
    assert (await receive_frame(tab))[1]["code"] == "speech_not_started"
    await tab.disconnect()
    assert await Message.objects.acount() == 0


async def test_an_utterance_over_the_limit_is_refused_and_the_socket_stays_usable(
    conversation, user, tone_engine, question, settings
):
    settings.VOICE_STT_MAX_SECONDS = 1.0
    tab = await connect(conversation, user)
    await say(tab, question)
    _kind, error = await receive_frame(tab)
    assert error["code"] == "utterance_too_long" and "1 second" in error["message"]
    assert await tab.receive_nothing(0.5)  # its remaining frames and its speech.end are dropped quietly
    await say(tab, question[: 16000 * 2 // 2])  # half a second is fine
    _kind, event = await receive_frame(tab, seconds=30)
    assert event["type"] in ("transcript", "error")  # heard, or not caught: either way, an answer
    await tab.disconnect()
    assert not await Message.objects.filter(role="user").exclude(text="").filter(audio="").aexists()


async def test_a_cancelled_utterance_stores_nothing(conversation, user, tone_engine, question):
    tab = await connect(conversation, user)
    await say(tab, question, end="speech.cancel")
    assert await tab.receive_nothing(1.0)
    await tab.disconnect()
    assert await Message.objects.acount() == 0


async def test_speaking_interrupts_the_reply_being_spoken(conversation, user, gated_engine, question):
    tab = await connect(conversation, user)
    await tab.send_json_to({"type": "query", "text": "One. Two. Three."})
    reply = (await until(tab, lambda e: e["type"] == "audio.start"))[-1][1]["message_id"]
    await tab.send_json_to({**START, "message_id": reply, "heard_ms": 40})
    frames = await until(tab, done_for(reply))
    assert events(frames, "reply.done")[-1]["status"] == "interrupted"
    gated_engine.set()
    await tab.send_json_to({"type": "speech.cancel"})
    await tab.disconnect()
    interrupted = await Message.objects.aget(pk=reply)
    assert (interrupted.status, interrupted.heard_ms) == ("interrupted", 40)
