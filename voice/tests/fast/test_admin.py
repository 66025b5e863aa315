import pytest

from voice import admin
from voice.models import Message

from .test_views import spoken_reply  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_conversations_show_their_messages_with_a_player(staff_client, conversation, spoken_reply):  # noqa: F811
    Message.objects.create(conversation=conversation, role="user", text="Hello <b>admin</b>")
    page = staff_client.get(f"/admin/voice/conversation/{conversation.pk}/change/").content.decode()
    assert f'<audio controls preload="none" src="/messages/{spoken_reply.pk}/audio/">' in page
    assert "Hello &lt;b&gt;admin&lt;/b&gt;" in page
    # The player's source plays for staff.
    assert staff_client.get(spoken_reply.audio_url).status_code == 200


def test_search_and_filters(staff_client, conversation, spoken_reply):  # noqa: F811
    assert conversation.owner.username in staff_client.get("/admin/voice/conversation/", {"q": "Hi."}).content.decode()
    assert staff_client.get("/admin/voice/conversation/", {"q": "alice"}).context["cl"].result_count == 1
    assert staff_client.get("/admin/voice/conversation/", {"q": "nothing like it"}).context["cl"].result_count == 0
    messages = staff_client.get("/admin/voice/message/", {"role": "assistant", "status": "complete"})
    assert messages.context["cl"].result_count == 1
    page = staff_client.get(f"/admin/voice/message/{spoken_reply.pk}/change/").content.decode()
    assert "<audio controls" in page and "time to first audio" in page.lower()


@pytest.fixture
def told_conversation(conversation):
    """A conversation with a markdown reply that was cut short, failed, and thought first."""
    Message.objects.create(conversation=conversation, role="user", text="Tell me **everything**.")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        text="Here is **bold** and [a link](https://example.com). <script>alert(1)</script> [x](javascript:alert(2))",
        status=Message.Status.INTERRUPTED,
        heard_ms=2300,
        duration_ms=7100,
        ttfa_ms=180,
        first_text_ms=40,
        reply_ms=900,
        error_code="producer_gone",
        error="The process producing this reply stopped before it ended.",
        reasoning="The user wants everything; keep it short anyway.",
    )
    return conversation


def test_a_conversation_reads_as_a_transcript(staff_client, told_conversation):
    page = staff_client.get(f"/admin/voice/conversation/{told_conversation.pk}/change/").content.decode()
    transcript = page[page.index('class="transcript-admin"') :]
    # The user's text as text, the reply rendered and sanitized.
    assert "Tell me **everything**." in transcript
    assert "Here is <strong>bold</strong>" in transcript
    assert '<a href="https://example.com" target="_blank" rel="noopener noreferrer">a link</a>' in transcript
    assert "<script>alert(1)" not in page and 'href="javascript' not in page
    # How much was heard, timings, the error for staff, the reasoning collapsed.
    assert "heard 2.3 s of 7.1 s" in transcript
    assert "<dt>first audio</dt><dd>180 ms</dd>" in transcript
    assert "<code>producer_gone</code> The process producing this reply stopped before it ended." in transcript
    assert '<details class="transcript-admin__reasoning"><summary>Reasoning (48 characters)</summary>' in transcript
    assert "voice/admin.css" in page
    # No table of every field any more.
    assert "tabular" not in page and "inline-group" not in page


def test_a_long_conversations_transcript_shows_its_newest_messages(staff_client, conversation, monkeypatch):
    monkeypatch.setattr(admin, "TRANSCRIPT_MESSAGES", 2)
    for n in range(5):
        Message.objects.create(conversation=conversation, role="user", text=f"Question number {n}.")
    page = staff_client.get(f"/admin/voice/conversation/{conversation.pk}/change/").content.decode()
    transcript = page[page.index('class="transcript-admin"') :]
    assert "Question number 0." not in transcript
    assert transcript.index("Question number 3.") < transcript.index("Question number 4.")  # oldest first
    assert "The 2 newest of 5 messages." in page
    every = staff_client.get("/admin/voice/message/", {"conversation__id__exact": conversation.pk})
    assert every.status_code == 200 and every.context["cl"].result_count == 5


def test_a_message_shows_its_reply_rendered(staff_client, told_conversation):
    reply = told_conversation.messages.get(role="assistant")
    page = staff_client.get(f"/admin/voice/message/{reply.pk}/change/").content.decode()
    assert '<div class="markdown"><p>Here is <strong>bold</strong>' in page
    assert "<script>alert(1)" not in page
    assert "The user wants everything" in page and "collapse" in page
    listing = staff_client.get("/admin/voice/message/", {"status": "interrupted"})
    assert listing.context["cl"].result_count == 1
    assert "Here is **bold** and [a link]" in listing.content.decode()


def test_the_transcript_notes_a_reply_the_server_cut_short(staff_client, conversation):
    Message.objects.create(conversation=conversation, role="assistant", text="A port is.", cut=Message.Cut.REPETITION)
    page = staff_client.get(f"/admin/voice/conversation/{conversation.pk}/change/").content.decode()
    assert '<span class="transcript-admin__cut">Reply stopped: it was repeating itself</span>' in page
    listing = staff_client.get("/admin/voice/message/", {"cut": "repetition"}).context["cl"]
    assert listing.result_count == 1 and "cut" in [spec.field_path for spec in listing.filter_specs]
