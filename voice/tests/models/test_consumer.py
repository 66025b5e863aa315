"""The chat socket end to end with the real voice: a query streams Piper's audio and both are stored."""

import io
import wave

import pytest
from asgiref.sync import sync_to_async

from voice.models import Conversation
from voice.tests.helpers import assert_is_speech, audio_frames, connect, events, until_done

pytestmark = pytest.mark.django_db(transaction=True)

THREE_SENTENCES = "The weather is lovely today. Shall we go for a walk? I will bring an umbrella, just in case."


async def test_a_query_streams_a_spoken_reply_and_stores_both(conversation, user):
    communicator = await connect(conversation, user)
    await communicator.send_json_to({"type": "query", "text": THREE_SENTENCES})
    frames = await until_done(communicator)

    user_event, assistant_event = events(frames, "message")[:2]
    assert user_event["message"]["role"] == "user" and user_event["message"]["text"] == THREE_SENTENCES
    assert assistant_event["message"]["status"] == "streaming"
    assert assistant_event["requested_here"] is True
    reply_id = assistant_event["message"]["id"]

    # Text streams as deltas and adds up to the reply.
    deltas = events(frames, "reply.delta")
    assert len(deltas) > 3 and "".join(d["text"] for d in deltas) == THREE_SENTENCES

    (start,) = events(frames, "audio.start")
    assert start == {
        "type": "audio.start",
        "message_id": reply_id,
        "format": "pcm_s16le",
        "sample_rate": 22050,
        "channels": 1,
    }
    chunks = audio_frames(frames)
    assert len(chunks) >= 3  # one per sentence at least
    assert [h["seq"] for h, _ in chunks] == list(range(len(chunks)))
    assert {(h["message_id"], h["format"], h["sample_rate"]) for h, _ in chunks} == {(reply_id, "pcm_s16le", 22050)}
    spans = sorted({(h["text_start"], h["text_end"]) for h, _ in chunks})
    assert [THREE_SENTENCES[a:b] for a, b in spans] == [
        "The weather is lovely today.",
        "Shall we go for a walk?",
        "I will bring an umbrella, just in case.",
    ]
    pcm = b"".join(data for _, data in chunks)
    assert_is_speech(pcm, 22050, min_seconds=3.5, max_seconds=12)

    # Audio is sent as it is made: every chunk comes before the end of the reply.
    kinds = [f[1]["type"] if f[0] == "event" else "audio" for f in frames]
    assert kinds.index("audio") < kinds.index("audio.end") < kinds.index("reply.done")
    assert max(i for i, k in enumerate(kinds) if k == "audio") < kinds.index("audio.end")

    (end,) = events(frames, "audio.end")
    assert end["chunks"] == len(chunks)
    assert end["duration_ms"] == pytest.approx(len(pcm) / 2 / 22.05, abs=2)
    final = events(frames, "message")[-1]["message"]
    assert final["status"] == "complete" and final["text"] == THREE_SENTENCES
    assert final["audio_url"] == end["url"] == f"/messages/{reply_id}/audio/"
    done = events(frames, "reply.done")[-1]
    assert done["status"] == "complete"
    assert 0 < done["metrics"]["ttfa_ms"] < done["metrics"]["reply_ms"] + done["metrics"]["synthesis_ms"]
    assert done["metrics"]["sentences"] == 3
    await communicator.disconnect()

    messages = await sync_to_async(list)(conversation.messages.order_by("pk"))
    assert [(m.role, m.status) for m in messages] == [("user", "complete"), ("assistant", "complete")]
    reply = messages[1]
    assert (reply.text, reply.engine, reply.voice, reply.audio_format) == (
        THREE_SENTENCES,
        "piper",
        "en_US-joe-medium",
        "wav",
    )
    assert reply.ttfa_ms == done["metrics"]["ttfa_ms"] and reply.synthesis_ms > 0
    stored = await sync_to_async(lambda: reply.audio.open("rb").read())()
    with wave.open(io.BytesIO(stored)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (22050, 2, 1)
        assert wav.readframes(wav.getnframes()) == pcm
    conversation = await Conversation.objects.aget(pk=conversation.pk)
    assert conversation.title == THREE_SENTENCES[:79] + "…"
