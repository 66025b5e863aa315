import datetime
import io
import wave

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from voice import audio, views
from voice.management.commands.wire_js import WIRE_JS
from voice.models import Conversation, Message
from voice.tests.engines import tone

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
    groups = client.get("/c/new/").context["conversation_groups"]
    assert groups == [("Today", [older, newer])]


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


def test_audio_is_served_to_users_allowed_to_view_messages_not_to_all_staff(client, staff_user, spoken_reply):
    client.force_login(staff_user)
    assert client.get(spoken_reply.audio_url).status_code == 404  # staff, but no permission for messages
    staff_user.user_permissions.add(Permission.objects.get(codename="view_message", content_type__app_label="voice"))
    client.force_login(User.objects.get(pk=staff_user.pk))  # permissions are cached per user object
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
    assert '<option value="1.5" selected>' in page
    assert '<option value="en_US-joe-medium" data-language="en-US" selected>en US joe medium (en-US)' in page


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


# --- Byte ranges: stored replies can be scrubbed ------------------------------------
def wav_of(reply) -> bytes:
    with reply.audio.open("rb") as stored:
        return stored.read()


def test_audio_says_it_serves_ranges(client, user, spoken_reply):
    client.force_login(user)
    response = client.get(spoken_reply.audio_url)
    assert response["Accept-Ranges"] == "bytes"
    assert b"".join(response.streaming_content) == wav_of(spoken_reply)


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, None),
        ("bytes=-44", -44, None),
        ("bytes=10-10", 10, 11),
        ("bytes=0-99999999", 0, None),  # past the end: up to the end
        ("bytes=-99999999", 0, None),  # a suffix longer than the file: all of it
    ],
)
def test_audio_serves_one_byte_range(client, user, spoken_reply, header, start, stop):
    client.force_login(user)
    whole = wav_of(spoken_reply)
    expected = whole[start:stop]
    response = client.get(spoken_reply.audio_url, HTTP_RANGE=header)
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == expected
    first = whole.index(expected) if start >= 0 else len(whole) - len(expected)
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(whole)}"
    assert response["Content-Length"] == str(len(expected))
    assert response["Content-Type"] == "audio/wav" and response["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes=99999999-", "bytes=20-10", "bytes=abc", "bytes=-0", "bytes="])
def test_audio_refuses_ranges_it_cannot_satisfy(client, user, spoken_reply, header):
    client.force_login(user)
    response = client.get(spoken_reply.audio_url, HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(wav_of(spoken_reply))}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "pages=1-2"])
def test_audio_sends_everything_for_ranges_it_does_not_serve(client, user, spoken_reply, header):
    client.force_login(user)
    response = client.get(spoken_reply.audio_url, HTTP_RANGE=header)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == wav_of(spoken_reply)


def test_ranges_are_404_for_anyone_else(client, other_user, spoken_reply):
    client.force_login(other_user)
    assert client.get(spoken_reply.audio_url, HTTP_RANGE="bytes=0-9").status_code == 404


# --- Conversations: rename, delete, search --------------------------------------------
def test_conversations_per_account_are_bounded(client, user, settings):
    settings.VOICE_MAX_CONVERSATIONS = 2
    client.force_login(user)
    assert [client.post("/c/").status_code for _ in range(2)] == [201, 201]
    refused = client.post("/c/")
    assert refused.status_code == 403 and refused.json()["code"] == "too_many_conversations"
    assert "2 conversations" in refused.json()["message"] and Conversation.objects.filter(owner=user).count() == 2
    Conversation.objects.filter(owner=user).first().delete()
    assert client.post("/c/").status_code == 201


def test_renaming_a_conversation(client, user, conversation):
    client.force_login(user)
    url = f"/c/{conversation.pk}/rename/"
    response = client.post(url, {"title": "  Holiday plans  "})
    assert response.status_code == 200 and response.json() == {"id": conversation.pk, "title": "Holiday plans"}
    conversation.refresh_from_db()
    assert conversation.title == "Holiday plans"
    assert client.post(url, {"title": "   "}).status_code == 400
    assert client.post(url, {"title": "x" * 81}).status_code == 400
    assert client.get(url).status_code == 405


def test_deleting_a_conversation_takes_its_messages(client, user, conversation, spoken_reply):
    client.force_login(user)
    response = client.post(f"/c/{conversation.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(pk=spoken_reply.pk).exists()


def test_deleting_a_conversation_deletes_its_audio_and_recordings(
    client, user, conversation, spoken_reply, django_capture_on_commit_callbacks
):
    recording = Message.objects.create(conversation=conversation, role="user", text="Hi.", audio_format="wav")
    recording.audio.save("query.wav", ContentFile(b"RIFF recording"))
    names = [spoken_reply.audio.name, recording.audio.name]
    assert all(default_storage.exists(name) for name in names)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/c/{conversation.pk}/delete/")
    assert not any(default_storage.exists(name) for name in names)


def test_audio_files_stay_when_the_deletion_is_rolled_back(conversation, spoken_reply):
    with pytest.raises(RuntimeError), transaction.atomic():
        conversation.delete()
        raise RuntimeError("the request failed after the delete")
    assert default_storage.exists(spoken_reply.audio.name)


def test_others_cannot_rename_delete_or_read_a_conversation(client, other_user, conversation):
    client.force_login(other_user)
    assert client.post(f"/c/{conversation.pk}/rename/", {"title": "Mine now"}).status_code == 404
    assert client.post(f"/c/{conversation.pk}/delete/").status_code == 404
    assert client.get(f"/c/{conversation.pk}/messages/").status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk, title="").exists()


def listed(client, query="") -> list[tuple[str, list[str]]]:
    body = client.get("/c/list/", {"q": query}).json()
    return [(group["label"], [c["title"] for c in group["conversations"]]) for group in body["groups"]]


def test_search_finds_titles_and_what_was_said(client, user, other_user):
    client.force_login(user)
    tea = Conversation.objects.create(owner=user, title="Morning tea")
    coffee = Conversation.objects.create(owner=user, title="Plans")
    Message.objects.create(conversation=coffee, role="assistant", text="A strong COFFEE, then.")
    Conversation.objects.create(owner=other_user, title="Coffee of someone else")
    assert listed(client, "tea") == [("Today", [str(tea)])]
    assert listed(client, "coffee") == [("Today", [str(coffee)])]
    assert listed(client, "nothing like it") == []
    assert listed(client) == [("Today", [str(coffee), str(tea)])]


def test_conversations_are_grouped_by_date(client, user):
    from django.utils import timezone

    from voice.views import date_groups

    now = timezone.now()
    ages = {"today": 0, "yesterday": 1, "this week": 3, "this month": 20, "long ago": 400}
    conversations = []
    for title, days in ages.items():
        conversation = Conversation.objects.create(owner=user, title=title)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - datetime.timedelta(days=days))
        conversations.append(Conversation.objects.get(pk=conversation.pk))
    groups = date_groups(conversations, timezone.localdate(now))
    long_ago = timezone.localdate(now - datetime.timedelta(days=400))
    assert [(label, [str(c) for c in items]) for label, items in groups] == [
        ("Today", ["today"]),
        ("Yesterday", ["yesterday"]),
        ("Previous 7 days", ["this week"]),
        ("Previous 30 days", ["this month"]),
        (long_ago.strftime("%B %Y"), ["long ago"]),
    ]
    client.force_login(user)
    page = client.get(f"/c/{conversations[0].pk}/").content.decode()
    assert page.index(">Today<") < page.index(">Yesterday<") < page.index(">Previous 30 days<")


# --- Catching up after a dropped connection ----------------------------------------------
def test_catch_up_gives_newer_and_unfinished_messages(client, user, conversation):
    old = Message.objects.create(conversation=conversation, role="user", text="Old.")
    streaming = Message.objects.create(conversation=conversation, role="assistant", text="Half", status="streaming")
    done = Message.objects.create(conversation=conversation, role="assistant", text="Done.")
    newer = Message.objects.create(conversation=conversation, role="user", text="Newer.")
    client.force_login(user)
    url = f"/c/{conversation.pk}/messages/"
    ids = [m["id"] for m in client.get(url, {"after": done.pk}).json()["messages"]]
    assert ids == [streaming.pk, newer.pk]
    everything = client.get(url, {"after": 0}).json()
    assert [m["id"] for m in everything["messages"]] == [old.pk, streaming.pk, done.pk, newer.pk]
    assert everything["messages"][1] == streaming.as_event_payload() and not everything["has_more"]
    assert client.get(url, {"after": "x"}).status_code == 400
    assert client.get(url).status_code == 400  # never the whole conversation at once


def test_catch_up_comes_a_page_at_a_time(client, user, conversation, monkeypatch):
    monkeypatch.setattr(views, "CATCH_UP_MESSAGES", 2)
    streaming = Message.objects.create(conversation=conversation, role="assistant", text="Half", status="streaming")
    later = [Message.objects.create(conversation=conversation, role="user", text=f"{n}.") for n in range(3)]
    client.force_login(user)
    url = f"/c/{conversation.pk}/messages/"
    first = client.get(url, {"after": streaming.pk}).json()
    assert [m["id"] for m in first["messages"]] == [streaming.pk, later[0].pk, later[1].pk] and first["has_more"]
    rest = client.get(url, {"after": later[1].pk}).json()
    assert [m["id"] for m in rest["messages"]] == [streaming.pk, later[2].pk] and not rest["has_more"]


# --- Markdown in replies --------------------------------------------------------------
def test_replies_are_rendered_as_sanitized_markdown(client, user, conversation):
    Message.objects.create(conversation=conversation, role="user", text="**not bold**, a *user's* text")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        text="Some **bold** and [a link](https://example.com).\n\n- one\n- two\n\n[x](javascript:alert(1)) "
        '<img src=x onerror="alert(1)"> <script>alert(2)</script>\n\n```\n<b>code</b>\n```',
    )
    client.force_login(user)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert "**not bold**, a *user&#x27;s* text" in page  # user messages stay text
    assert "Some <strong>bold</strong>" in page and "<li>one</li>" in page
    assert '<a href="https://example.com" target="_blank" rel="noopener noreferrer">a link</a>' in page
    assert "javascript:" not in page.split('id="messages"')[1].replace("[x](javascript:alert(1))", "")
    assert "<img src=x" not in page and "<script>alert(2)" not in page
    assert "<pre><code>&lt;b&gt;code&lt;/b&gt;" in page


def test_a_reply_cut_short_by_the_server_says_so_after_a_reload(client, user, conversation):
    Message.objects.create(conversation=conversation, role="assistant", text="Long.", cut=Message.Cut.LENGTH)
    Message.objects.create(conversation=conversation, role="assistant", text="Looped.", cut=Message.Cut.REPETITION)
    Message.objects.create(conversation=conversation, role="assistant", text="Whole.")
    client.force_login(user)
    page = client.get(conversation.get_absolute_url()).content.decode()
    notes = page.split('id="messages"')[1].split('class="message__cut">')[1:]
    assert [note.split("<")[0] for note in notes] == ["Reply shortened", "Reply stopped: it was repeating itself", ""]
    # The page's own notes, for live replies, say the same.
    page_notes = (WIRE_JS.parent / "messages.js").read_text()
    assert all(f'[CUT.{cut.name}]: "{cut.label}"' in page_notes for cut in Message.Cut)
