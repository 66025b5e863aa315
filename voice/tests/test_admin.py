import pytest

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
