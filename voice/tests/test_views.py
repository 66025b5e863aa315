import io
import wave

import pytest
from django.core.files.base import ContentFile

from voice import audio
from voice.models import Conversation, Message

from .engines import tone

pytestmark = pytest.mark.django_db


@pytest.fixture
def spoken_reply(conversation):
    reply = Message.objects.create(conversation=conversation, role="assistant", text="Hi.", duration_ms=250)
    reply.audio_format = "wav"
    reply.audio.save("reply.wav", ContentFile(audio.wav_bytes(audio.to_pcm16(tone(0.25)), 16000)))
    return reply


def test_pages_need_a_login(client, conversation):
    for url in ["/", "/c/new/", conversation.get_absolute_url()]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_home_opens_the_latest_conversation_or_a_new_one(client, user):
    client.force_login(user)
    assert client.get("/").status_code == 200  # nothing yet: the new-conversation page
    older = Conversation.objects.create(owner=user)
    newer = Conversation.objects.create(owner=user)
    older.save()  # touched last
    assert client.get("/")["Location"] == older.get_absolute_url()
    assert newer in client.get("/c/new/").context["conversations"]


def test_history_is_rendered_as_text_never_html(client, user, conversation):
    Message.objects.create(conversation=conversation, role="user", text='<img src=x onerror="alert(1)">')
    client.force_login(user)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_conversations_of_others_are_404(client, other_user, conversation):
    client.force_login(other_user)
    assert client.get(conversation.get_absolute_url()).status_code == 404


def test_creating_a_conversation(client, user):
    client.force_login(user)
    assert client.get("/c/").status_code == 405
    response = client.post("/c/")
    assert response.status_code == 201
    created = Conversation.objects.get(owner=user)
    assert response.json() == {"id": created.pk, "url": f"/c/{created.pk}/"}


def test_audio_is_served_to_its_owner_as_a_valid_wav(client, user, spoken_reply):
    client.force_login(user)
    response = client.get(spoken_reply.audio_url)
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(b"".join(response.streaming_content))) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(0.25)


def test_audio_is_served_to_staff(client, staff_user, spoken_reply):
    client.force_login(staff_user)
    assert client.get(spoken_reply.audio_url).status_code == 200


def test_audio_is_404_for_anyone_else(client, other_user, spoken_reply, conversation):
    assert client.get(spoken_reply.audio_url).status_code == 302  # anonymous: log in first
    client.force_login(other_user)
    assert client.get(spoken_reply.audio_url).status_code == 404
    silent = Message.objects.create(conversation=conversation, role="assistant", text="No audio.")
    client.force_login(conversation.owner)
    assert client.get(f"/messages/{silent.pk}/audio/").status_code == 404


def test_voice_and_speed_are_saved_per_conversation(client, user, conversation):
    client.force_login(user)
    url = f"/c/{conversation.pk}/settings/"
    response = client.post(url, {"voice": "en_US-joe-medium", "speed": "1.5"})
    assert response.status_code == 200 and response.json() == {"voice": "en_US-joe-medium", "speed": 1.5}
    conversation.refresh_from_db()
    assert (conversation.voice, conversation.speed) == ("en_US-joe-medium", 1.5)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert '<option value="1.5" selected>' in page and '<option value="en_US-joe-medium" selected>' in page


@pytest.mark.parametrize(("fields", "field"), [({"voice": "nope", "speed": "1"}, "voice"), ({"speed": "9"}, "speed")])
def test_bad_settings_are_400_with_the_reason(client, user, conversation, fields, field):
    client.force_login(user)
    response = client.post(f"/c/{conversation.pk}/settings/", fields)
    assert response.status_code == 400 and field in response.json()["errors"]
    assert client.post("/c/", fields).status_code == 400
    conversation.refresh_from_db()
    assert (conversation.voice, conversation.speed) == ("", 1.0)


def test_settings_of_others_are_404(client, other_user, conversation):
    client.force_login(other_user)
    assert client.post(f"/c/{conversation.pk}/settings/", {"speed": "1.5"}).status_code == 404


def test_a_new_conversation_takes_the_picked_settings(client, user):
    client.force_login(user)
    response = client.post("/c/", {"voice": "", "speed": "0.75"})
    assert Conversation.objects.get(pk=response.json()["id"]).speed == 0.75
