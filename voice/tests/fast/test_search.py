"""Conversation search (``GET /c/list/?q=``): only the caller's rows, a length cap, a rate limit."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from voice.models import Conversation, Message

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:
    return [c["title"] for group in response.json()["groups"] for c in group["conversations"]]


def subquery(sql: str) -> str:
    """The text of the first ``IN (SELECT …)`` of ``sql``, up to its closing parenthesis."""
    start = sql.index("IN (SELECT") + len("IN (")
    depth = 1
    for end in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        if depth == 0:
            return sql[start:end]
    raise AssertionError(f"unbalanced subquery in {sql}")


def test_a_search_scans_only_the_callers_own_messages(client, user, other_user):
    mine = Conversation.objects.create(owner=user, title="Plans")
    Message.objects.create(conversation=mine, role="user", text="What about the weather tomorrow?")
    theirs = Conversation.objects.create(owner=other_user, title="Weather")
    Message.objects.create(conversation=theirs, role="assistant", text="The weather is fine.")
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/c/list/", {"q": "weather"})
    assert response.status_code == 200 and titles(response) == ["Plans"]
    (search,) = [q["sql"] for q in queries.captured_queries if "weather" in q["sql"].lower()]
    # The messages are narrowed to the caller's before any text is compared: never `%weather%` over
    # every user's rows, filtered to the caller's afterwards.
    inner = subquery(search)
    assert "voice_message" in inner and "weather" in inner.lower()
    assert f'"owner_id" = {user.pk}' in inner, inner


def test_search_finds_titles_and_messages_of_the_caller_only(client, user, other_user):
    Conversation.objects.create(owner=user, title="Weather report")
    by_text = Conversation.objects.create(owner=user, title="Plans")
    Message.objects.create(conversation=by_text, role="assistant", text="Rain, says the WEATHER.")
    Conversation.objects.create(owner=user, title="Something else")
    theirs = Conversation.objects.create(owner=other_user, title="Weather too")
    Message.objects.create(conversation=theirs, role="user", text="weather")
    client.force_login(user)
    assert sorted(titles(client.get("/c/list/", {"q": "weather"}))) == ["Plans", "Weather report"]
    # Wildcards are text, not patterns.
    assert titles(client.get("/c/list/", {"q": "%"})) == []
    assert titles(client.get("/c/list/", {"q": "_"})) == []


def test_a_search_longer_than_the_limit_is_refused(client, user, settings):
    settings.VOICE_SEARCH_MAX_CHARS = 10
    Conversation.objects.create(owner=user, title="x" * 20)
    client.force_login(user)
    assert titles(client.get("/c/list/", {"q": "x" * 10})) == ["x" * 20]
    assert titles(client.get("/c/list/", {"q": f"  {'x' * 10}  "})) == ["x" * 20]  # counted stripped
    response = client.get("/c/list/", {"q": "x" * 11})
    assert response.status_code == 400
    assert response.json() == {"code": "query_too_long", "message": "Search for at most 10 characters."}


def test_the_default_limit_is_a_hundred_characters(client, user):
    client.force_login(user)
    assert client.get("/c/list/", {"q": "x" * 100}).status_code == 200
    assert client.get("/c/list/", {"q": "x" * 101}).status_code == 400


def test_searches_are_rate_limited_per_user(client, user, other_user, settings):
    settings.VOICE_SEARCH_RATE_LIMIT = 3
    client.force_login(user)
    for n in range(3):
        assert client.get("/c/list/", {"q": f"word {n}"}).status_code == 200
    refused = client.get("/c/list/", {"q": "one more"})
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert refused.json() == {
        "code": "rate_limited",
        "message": "That is more than 3 searches in a minute. Wait a moment, then search again.",
    }
    assert client.get("/c/list/").status_code == 429  # listing counts too: it is the same query
    # Someone else is not held back by it.
    client.force_login(other_user)
    assert client.get("/c/list/", {"q": "word"}).status_code == 200


def test_no_rate_limit_when_it_is_zero(client, user, settings):
    settings.VOICE_SEARCH_RATE_LIMIT = 0
    client.force_login(user)
    assert all(client.get("/c/list/", {"q": "word"}).status_code == 200 for _ in range(30))


def test_the_search_box_is_as_long_as_the_limit(client, user, settings):
    settings.VOICE_SEARCH_MAX_CHARS = 42
    client.force_login(user)
    page = client.get("/c/new/").content.decode()
    assert 'id="conversation-search" name="q" maxlength="42"' in page
