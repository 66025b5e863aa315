"""The speech API: auth, validation and tokens in process (models/ streams real speech; services/ a live Daphne)."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone

from voice.models import ApiKey, SpeechToken
from voice.tests.helpers import read_socket

VOICES = "/v1/voice-synthesis/voices"
SYNTHESIZE = "/v1/voice-synthesis/synthesize"
SPEECH = "/v1/audio/speech"


@pytest.fixture
def key(user):
    _key, plain = ApiKey.issue(user, "tests")
    return plain


def bearer(plain):
    return {"HTTP_AUTHORIZATION": f"Bearer {plain}"}


# --- Access ------------------------------------------------------------------------
@pytest.mark.django_db
def test_credentials_are_required_and_checked(client, user, key):
    assert client.get(VOICES).json()["error"]["code"] == "missing_credentials"
    assert client.get(VOICES).status_code == 401
    assert client.get(VOICES, **bearer("vk_nope_nope")).status_code == 401
    assert client.get(VOICES, **bearer(key)).status_code == 200
    ApiKey.objects.update(revoked_at=timezone.now())
    assert client.get(VOICES, **bearer(key)).status_code == 401  # at once


@pytest.mark.django_db
def test_browser_sessions_work_but_need_csrf_for_posts(user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get(VOICES).status_code == 200
    body = json.dumps({"text": "Hi.", "voice_id": "en_US-joe-medium"})
    response = browser.post(SYNTHESIZE, body, content_type="application/json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "csrf_failed"


@pytest.mark.django_db
def test_anonymous_use_is_off_unless_allowed(client, settings):
    assert client.get(VOICES).status_code == 401
    settings.VOICE_API_ALLOW_ANONYMOUS = True
    voices = client.get(VOICES).json()
    assert next(iter(voices)) == "en_US-joe-medium"
    assert voices["en_US-joe-medium"] == {
        "name": "en US joe medium",
        "language": "en-US",
        "engine": "piper",
        "sample_rate": 22050,
    }


@pytest.mark.django_db
def test_rate_limit_per_key(client, key, settings):
    from django.core.cache import cache

    cache.clear()
    settings.VOICE_API_RATE_LIMIT = 2
    assert [client.get(VOICES, **bearer(key)).status_code for _ in range(3)] == [200, 200, 429]
    response = client.post(SPEECH, {"input": "Hi."}, content_type="application/json", **bearer(key))
    assert response.status_code == 429 and response.json()["error"]["type"] == "rate_limit_error"
    cache.clear()


@pytest.mark.django_db
def test_what_a_key_may_have_spoken_is_counted_in_characters(client, key, settings, tone_engine):
    settings.VOICE_API_CHARS_PER_MINUTE = 100
    said = "Forty characters of speech, said aloud. "
    statuses = [
        client.post(SPEECH, {"input": said, "response_format": "pcm"}, content_type="application/json", **bearer(key))
        for _ in range(3)
    ]
    assert [response.status_code for response in statuses[:2]] == [200, 200]
    refused = statuses[2].json()["error"]
    assert statuses[2].status_code == 429 and refused["code"] == "characters_rate_limited"
    assert refused["type"] == "rate_limit_error" and "100 characters" in refused["message"]
    # The Vivoka-style token is counted when it is asked for, before any synthesis.
    response = client.post(SYNTHESIZE, {"text": "Hi."}, content_type="application/json", **bearer(key))
    assert response.status_code == 429


@pytest.mark.django_db
def test_create_api_key_prints_the_key_last(user, capsys):
    call_command("create_api_key", user.username, "--name", "kiosk")
    plain = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiKey.authenticate(plain).user == user
    assert ApiKey.objects.get().hashed != plain and plain not in ApiKey.objects.get().hashed
    with pytest.raises(Exception, match="No user"):
        call_command("create_api_key", "nobody")


@pytest.mark.django_db
def test_admin_shows_a_new_key_once(admin_client, user):
    response = admin_client.post(
        "/admin/voice/apikey/add/", {"user": user.pk, "name": "from admin", "revoked_at": ""}, follow=True
    )
    shown = [str(m) for m in response.context["messages"]]
    plain = shown[0].rsplit(" ", 1)[-1]
    assert ApiKey.authenticate(plain).name == "from admin"


# --- Validation ----------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "bad_json"),
        ('["list"]', "bad_json"),
        ('{"text": "Hi.", "voice_id": "nope"}', "unknown_voice"),
        ('{"text": "  ", "voice_id": "en_US-joe-medium"}', "empty_text"),
        (json.dumps({"text": "x" * 2001}), "text_too_long"),
        ('{"text": "Hi.", "speed": 5}', "bad_speed"),
    ],
)
def test_bad_synthesis_requests_are_400_with_a_reason(client, key, body, code):
    response = client.post(SYNTHESIZE, body, content_type="application/json", **bearer(key))
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert not SpeechToken.objects.exists()


@pytest.mark.django_db
def test_unsupported_formats_get_openai_errors(client, key):
    response = client.post(
        SPEECH,
        {"input": "Hi.", "voice": "alloy", "response_format": "opus"},
        content_type="application/json",
        **bearer(key),
    )
    error = response.json()["error"]
    assert response.status_code == 400
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "response_format",
        "unsupported_response_format",
    )


# --- Tokens ----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_expired_and_unknown_tokens_are_refused(user):
    await SpeechToken.objects.acreate(
        token="stale",
        user=user,
        text="Too late.",
        voice="en_US-joe-medium",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    for token in ("stale", "never-issued"):
        messages, code = await read_socket(f"/v1/ws/{token}")
        assert messages[0]["error"]["code"] == "invalid_token" and code == 4401
    assert await sync_to_async(SpeechToken.objects.get)(token="stale") is not None
