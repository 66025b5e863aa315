"""Long conversations: the page shows the newest messages; older ones come a page at a time (``?before=``)."""

import pytest

from voice.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def long_conversation(conversation):
    """60 questions and their replies: ids ascending, user first."""
    for n in range(60):
        Message.objects.create(conversation=conversation, role="user", text=f"Question {n}")
        Message.objects.create(conversation=conversation, role="assistant", text=f"Answer {n}")
    return conversation


def test_the_page_renders_only_the_newest_messages_numbered_over_the_whole_conversation(
    client, user, long_conversation
):
    client.force_login(user)
    response = client.get(long_conversation.get_absolute_url())
    messages = response.context["messages"]
    assert len(messages) == 50
    assert [m.text for m in messages[:2]] == ["Question 35", "Answer 35"]
    assert messages[-1].text == "Answer 59"
    # "Copy reply 36", not "Copy reply 1": numbers count the messages not shown too.
    assert [(m.role, m.number) for m in messages[:2]] == [("user", 36), ("assistant", 36)]
    assert (messages[-1].role, messages[-1].number) == ("assistant", 60)
    page = response.content.decode()
    assert page.count('class="message message--') == 50
    assert 'aria-label="Copy reply 60"' in page and 'aria-label="Copy your message 36"' in page
    assert 'aria-label="Copy reply 35"' not in page
    assert 'id="load-earlier"' in page
    assert set(response.context["reply_sources"]) == {m.pk for m in messages if m.role == "assistant"}


def test_a_short_conversation_has_nothing_earlier(client, user, conversation):
    Message.objects.create(conversation=conversation, role="user", text="Hi.")
    client.force_login(user)
    response = client.get(conversation.get_absolute_url())
    assert [m.number for m in response.context["messages"]] == [1]
    assert 'id="load-earlier"' not in response.content.decode()


def test_earlier_pages_come_oldest_first_with_has_more(client, user, long_conversation, settings):
    settings.VOICE_PAGE_MESSAGES = 50
    client.force_login(user)
    url = f"/c/{long_conversation.pk}/messages/"
    first_shown = min(m.pk for m in client.get(long_conversation.get_absolute_url()).context["messages"])
    page = client.get(url, {"before": first_shown}).json()
    assert page["has_more"] is True
    assert len(page["messages"]) == 50
    assert [m["text"] for m in page["messages"][:2]] == ["Question 10", "Answer 10"]
    assert page["messages"][-1]["text"] == "Answer 34" and page["messages"][-1]["id"] == first_shown - 1
    ids = [m["id"] for m in page["messages"]]
    assert ids == sorted(ids)
    # Each in the shape of a `message` event, with its number in the whole conversation.
    first = page["messages"][0]
    assert {k: v for k, v in first.items() if k != "number"} == Message.objects.get(pk=first["id"]).as_event_payload()
    assert [(m["role"], m["number"]) for m in page["messages"][:2]] == [("user", 11), ("assistant", 11)]
    last = client.get(url, {"before": ids[0]}).json()
    assert last["has_more"] is False
    assert [m["text"] for m in last["messages"]][:2] == ["Question 0", "Answer 0"]
    assert len(last["messages"]) == 20 and last["messages"][-1]["id"] == ids[0] - 1
    assert [m["number"] for m in last["messages"]][:4] == [1, 1, 2, 2]
    assert client.get(url, {"before": last["messages"][0]["id"]}).json() == {"messages": [], "has_more": False}


def test_the_page_size_is_a_setting(client, user, long_conversation, settings):
    settings.VOICE_PAGE_MESSAGES = 3
    client.force_login(user)
    url = f"/c/{long_conversation.pk}/messages/"
    assert len(client.get(long_conversation.get_absolute_url()).context["messages"]) == 3
    newest = long_conversation.messages.order_by("-pk").first()
    page = client.get(url, {"before": newest.pk}).json()
    assert [m["text"] for m in page["messages"]] == ["Question 58", "Answer 58", "Question 59"]
    assert page["has_more"] is True
    settings.VOICE_PAGE_MESSAGES = 0  # no paging: everything at once
    response = client.get(long_conversation.get_absolute_url())
    assert len(response.context["messages"]) == 120 and 'id="load-earlier"' not in response.content.decode()
    assert len(client.get(url, {"before": newest.pk}).json()["messages"]) == 119


def test_earlier_pages_are_the_owners_only(client, user, other_user, long_conversation):
    url = f"/c/{long_conversation.pk}/messages/"
    newest = long_conversation.messages.order_by("-pk").first()
    assert client.get(url, {"before": newest.pk}).status_code == 302  # to the login page
    client.force_login(other_user)
    assert client.get(url, {"before": newest.pk}).status_code == 404
    client.force_login(user)
    assert client.get(url, {"before": "x"}).status_code == 400
    assert client.get(url, {"before": newest.pk}).status_code == 200
