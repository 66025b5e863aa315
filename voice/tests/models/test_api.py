"""The speech API's token socket with the real voice: it streams Piper's speech once, then never again."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from voice.models import SpeechRequest, SpeechToken
from voice.tests.helpers import assert_is_speech, read_socket


@pytest.mark.django_db(transaction=True)
async def test_a_token_streams_once_and_then_never_again(user):
    token = await SpeechToken.objects.acreate(
        token="once",
        user=user,
        text="Hello there. Second sentence.",
        voice="en_US-joe-medium",
        expires_at=timezone.now() + timedelta(seconds=60),
    )
    messages, code = await read_socket(f"/v1/ws/{token.token}")
    assert code == 1000
    assert messages[0]["event"]["type"] == "started" and messages[-1]["event"]["type"] == "finished"
    pcm = b"".join(base64.b64decode(m["data"].removeprefix("data:audio/pcm;base64,")) for m in messages[1:-1])
    assert all(m["data"].startswith("data:audio/pcm;base64,") for m in messages[1:-1])
    assert messages[-1]["event"]["duration_ms"] == round(len(pcm) / 2 / 22.05)
    assert_is_speech(pcm, 22050, 1, 6)
    record = await SpeechRequest.objects.aget()
    assert (record.api, record.characters, record.user_id) == ("vivoka", 29, user.pk)

    again, code = await read_socket(f"/v1/ws/{token.token}")
    assert again == [{"error": {"code": "invalid_token", "message": "Unknown, used or expired token."}}]
    assert code == 4401
