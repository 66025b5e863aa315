"""Security hardening: login throttling, API tokens and bodies, sockets that follow their session, settings."""

import json
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from voice.api import consumers as api_consumers
from voice.models import ApiKey, SpeechToken
from voice.tests.helpers import ORIGIN, chat_communicator
from voiceproject.asgi import application

ROOT = Path(__file__).resolve().parents[3]
SYNTHESIZE = "/v1/voice-synthesis/synthesize"
SPEECH = "/v1/audio/speech"


# --- 1. Login throttling ------------------------------------------------------------
def attempts(client: Client, path: str, username: str, password: str, times: int) -> list[int]:
    return [client.post(path, {"username": username, "password": password}).status_code for _ in range(times)]


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "who"), [("/accounts/login/", "user"), ("/admin/login/", "staff_user")])
def test_fifteen_wrong_passwords_lock_out_the_right_one(request, settings, path, who):
    account = request.getfixturevalue(who)
    password = {"alice": "pw-alice-123", "staff": "pw-staff-123"}[account.username]
    attacker = Client()
    statuses = attempts(attacker, path, account.username, "wrong password", 15)
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[: limit - 1] == [200] * (limit - 1)  # the form again, with its error
    assert set(statuses[limit - 1 :]) == {429}

    response = attacker.post(path, {"username": account.username, "password": password})
    assert response.status_code == 429 and not logged_in(attacker)
    page = response.content.decode()
    assert page == "Too many failed logins. Wait a few minutes, then try again."  # a plain sentence, nothing else


@pytest.mark.django_db
def test_a_lockout_is_per_username_and_address(user, other_user):
    attacker = Client()  # REMOTE_ADDR 127.0.0.1
    assert attempts(attacker, "/accounts/login/", "alice", "wrong password", 15)[-1] == 429
    # Another user at the same address is not locked out…
    neighbour = Client()
    response = neighbour.post("/accounts/login/", {"username": "mallory", "password": "pw-mallory-123"})
    assert response.status_code == 302 and logged_in(neighbour)
    # …nor is the same user from elsewhere: one attacker cannot lock everyone out.
    elsewhere = Client(REMOTE_ADDR="192.0.2.7")
    response = elsewhere.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302 and logged_in(elsewhere)


@pytest.mark.django_db(transaction=True)
async def test_the_lockout_holds_under_asgi_too(user, settings):
    # Daphne runs the middleware asynchronously: django-axes takes another path there.
    from django.test import AsyncClient

    attacker = AsyncClient()
    form = {"username": "alice", "password": "wrong password"}
    statuses = [(await attacker.post("/accounts/login/", form)).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses[-1] == 429
    response = await attacker.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 429
    assert response.content.decode() == "Too many failed logins. Wait a few minutes, then try again."


@pytest.mark.django_db
def test_an_address_guessing_a_new_username_each_time_is_locked_out(user, settings):
    settings.VOICE_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    attacker = Client(REMOTE_ADDR="198.51.100.9")
    statuses = [attempts(attacker, "/accounts/login/", f"guess-{n}", "wrong password", 1)[0] for n in range(8)]
    assert statuses[:6] == [200] * 6 and set(statuses[6:]) == {429}
    # From there, not even a real user's right password gets in: no password is checked at all.
    response = attacker.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 429 and not logged_in(attacker)
    assert response.content.decode() == "Too many failed logins. Wait a few minutes, then try again."
    elsewhere = Client(REMOTE_ADDR="192.0.2.7")
    response = elsewhere.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302 and logged_in(elsewhere)


def forwarded_by_the_shipped_proxy(sent_by_client: str, client_address: str) -> list[str]:
    """The X-Forwarded-For that deploy/nginx.conf hands Daphne, in each of its locations."""
    variables = {
        "$remote_addr": client_address,
        "$proxy_add_x_forwarded_for": f"{sent_by_client}, {client_address}" if sent_by_client else client_address,
    }
    headers = []
    for line in (ROOT / "deploy" / "nginx.conf").read_text().splitlines():
        words = line.split("#")[0].split()
        if words[:2] == ["proxy_set_header", "X-Forwarded-For"]:
            headers.append(variables[words[2].rstrip(";")])
    return headers


def test_behind_the_shipped_proxy_a_client_cannot_choose_its_address():
    from daphne.utils import parse_x_forwarded_for

    headers = forwarded_by_the_shipped_proxy("203.0.113.66", "198.51.100.9")
    assert len(headers) == 2  # the sockets' location and the pages'
    for header in headers:
        # Daphne --proxy-headers, as deploy/systemd runs it, takes the first address.
        address, _scheme = parse_x_forwarded_for(
            {b"x-forwarded-for": [header.encode()]}, original_addr=["127.0.0.1", 0]
        )
        assert address[0] == "198.51.100.9"


# --- 2 and 3. Speech API tokens --------------------------------------------------------
async def read_token_socket(token: str) -> tuple[list[dict], int]:
    communicator = WebsocketCommunicator(application, f"/v1/ws/{token}")
    connected, _ = await communicator.connect()
    assert connected  # accepted, so that the client is told why
    messages = []
    while (frame := await communicator.receive_output(10))["type"] != "websocket.close":
        messages.append(json.loads(frame["text"]))
    return messages, frame.get("code", 1000)


async def issue_token(user, api_key=None, name: str = "t" * 20) -> SpeechToken:
    return await SpeechToken.objects.acreate(
        token=name,
        user=user,
        api_key=api_key,
        text="Hello.",
        voice="a440",
        expires_at=timezone.now() + timedelta(minutes=1),
    )


@pytest.mark.django_db(transaction=True)
async def test_a_token_of_a_key_revoked_since_is_refused(user, tone_engine):
    key, _plain = await sync_to_async(ApiKey.issue)(user, "kiosk")
    kept = await issue_token(user, key, "kept-token")
    revoked = await issue_token(user, key, "revoked-token")

    messages, code = await read_token_socket(kept.token)
    assert code == 1000 and messages[-1]["event"]["type"] == "finished"  # the key is good: tokens work

    await ApiKey.objects.filter(pk=key.pk).aupdate(revoked_at=timezone.now())
    messages, code = await read_token_socket(revoked.token)
    assert messages == [{"error": {"code": "invalid_token", "message": "Unknown, used or expired token."}}]
    assert code == 4401


@pytest.mark.django_db(transaction=True)
async def test_a_token_of_a_deactivated_user_is_refused(user, tone_engine):
    token = await issue_token(user)
    user.is_active = False
    await user.asave()
    messages, code = await read_token_socket(token.token)
    assert messages[0]["error"]["code"] == "invalid_token" and code == 4401


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("valid", [True, False])
async def test_the_token_is_checked_before_the_socket_is_accepted(user, tone_engine, monkeypatch, valid):
    order = []
    redeem, accept = SpeechToken.redeem, api_consumers.TokenSynthesisConsumer.accept

    def recording_redeem(token):
        order.append("redeem")
        return redeem(token)

    async def recording_accept(self, *args, **kwargs):
        order.append("accept")
        return await accept(self, *args, **kwargs)

    monkeypatch.setattr(SpeechToken, "redeem", staticmethod(recording_redeem))
    monkeypatch.setattr(api_consumers.TokenSynthesisConsumer, "accept", recording_accept)
    token = (await issue_token(user)).token if valid else "never-issued"
    messages, code = await read_token_socket(token)
    assert order == ["redeem", "accept"]
    assert (code, "event" in messages[-1]) == ((1000, True) if valid else (4401, False))


# --- 4. Oversized API bodies -----------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(("path", "field"), [(SYNTHESIZE, "text"), (SPEECH, "input")])
def test_an_oversized_api_body_is_a_413_without_a_traceback(client, user, settings, caplog, path, field):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    _key, plain = ApiKey.issue(user)
    body = json.dumps({field: "x" * 2000})
    with caplog.at_level(logging.INFO):
        response = client.post(path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and error["message"] == "The request body is too large."
    if path == SPEECH:
        assert error["type"] == "invalid_request_error"  # OpenAI's shape, as its other errors
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.django_db
def test_an_oversized_form_body_of_a_session_is_a_413_too(user, settings, caplog):
    # The session's CSRF check reads a form body before the view does.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.cookies["csrftoken"] = "c" * 32  # so that the check goes on to read the form's token
    response = browser.post(SYNTHESIZE, {"text": "x" * 2000})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- 5. Chat sockets follow their session ------------------------------------------------------
def logged_in_browser(user) -> tuple[Client, list[tuple[bytes, bytes]]]:
    browser = Client()
    browser.force_login(user)
    return browser, [(b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode()), ORIGIN]


async def open_socket(conversation, headers) -> WebsocketCommunicator:
    communicator = chat_communicator(conversation.pk, headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def assert_closed_unauthenticated(communicator) -> None:
    assert await communicator.receive_output(5) == {"type": "websocket.close", "code": 4401}


@pytest.mark.django_db(transaction=True)
async def test_logging_out_closes_that_sessions_chat_sockets_only(conversation, user):
    browser, headers = await sync_to_async(logged_in_browser)(user)
    _other_device, other_headers = await sync_to_async(logged_in_browser)(user)
    tabs = [await open_socket(conversation, headers) for _ in range(2)]
    elsewhere = await open_socket(conversation, other_headers)

    response = await sync_to_async(browser.post)("/accounts/logout/")
    assert response.status_code == 302
    for tab in tabs:
        await assert_closed_unauthenticated(tab)
    assert await elsewhere.receive_nothing(0.5)  # another session of the same user stays
    await elsewhere.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_password_change_closes_the_other_sessions_chat_sockets(conversation, user, other_user):
    _old_device, headers = await sync_to_async(logged_in_browser)(user)
    browser, _ = await sync_to_async(logged_in_browser)(user)
    _bystander, bystander_headers = await sync_to_async(logged_in_browser)(other_user)
    bystanders_conversation = await conversation.__class__.objects.acreate(owner=other_user)
    tab = await open_socket(conversation, headers)
    bystander = await open_socket(bystanders_conversation, bystander_headers)

    response = await sync_to_async(browser.post)(
        "/accounts/password_change/",
        {"old_password": "pw-alice-123", "new_password1": "a-new-pw-4567", "new_password2": "a-new-pw-4567"},
    )
    assert response.status_code == 302
    await assert_closed_unauthenticated(tab)
    assert await bystander.receive_nothing(0.5)
    await bystander.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_password_set_by_an_admin_closes_the_users_chat_sockets(conversation, user):
    _browser, headers = await sync_to_async(logged_in_browser)(user)
    tab = await open_socket(conversation, headers)

    user.first_name = "Alice"
    await user.asave()  # nothing that logs in changed: the socket stays
    assert await tab.receive_nothing(0.5)

    await sync_to_async(user.set_password)("reset-by-admin-890")
    await user.asave()
    await assert_closed_unauthenticated(tab)


# --- 6. HSTS and the https redirect, from the environment ----------------------------------------
def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "voiceproject.settings"}
    environment.pop("DJANGO_SECRET_KEY", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_hsts_and_the_https_redirect_are_off_by_default_and_set_from_the_environment(tmp_path):
    show = (
        "import voiceproject.settings as s; print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_HSTS_PRELOAD, s.SECURE_SSL_REDIRECT)"
    )
    unset = {
        name: ""
        for name in (
            "DJANGO_SECURE_HSTS_SECONDS",
            "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS",
            "DJANGO_SECURE_HSTS_PRELOAD",
            "DJANGO_SECURE_SSL_REDIRECT",
        )
    }
    assert run_python(show, tmp_path, **unset).stdout.split() == ["0", "False", "False", "False"]
    on = {
        "DJANGO_SECURE_HSTS_SECONDS": "31536000",
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "DJANGO_SECURE_HSTS_PRELOAD": "1",
        "DJANGO_SECURE_SSL_REDIRECT": "1",
        "DJANGO_HTTPS": "1",
    }
    assert run_python(show, tmp_path, **on).stdout.split() == ["31536000", "True", "True", "True"]
    check = run_python(
        "from django.core.management import call_command; import django; django.setup(); "
        "call_command('check', deploy=True)",
        tmp_path,
        **on,
    )
    assert check.returncode == 0 and "System check identified" in check.stdout + check.stderr, check.stderr
    for warning in ("W004", "W005", "W008", "W021"):  # HSTS, its subdomains and preload, the redirect
        assert warning not in check.stdout + check.stderr


# --- 7. Placeholder secrets ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_SECRET_KEY", "change-me-to-a-long-random-string"),  # as in deploy/voice.env.example
        ("VOICE_METRICS_TOKEN", "change-me-too"),
        ("DJANGO_SECRET_KEY", "CHANGEME"),
        ("DATABASE_URL", "postgres://voice:change-me@127.0.0.1:5432/voice"),
    ],
)
def test_placeholder_secrets_stop_the_start(tmp_path, name, value):
    started = run_python("import django; django.setup()", tmp_path, **{name: value})
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr and "is a placeholder" in started.stderr
    assert (name if name != "DATABASE_URL" else "the password in DATABASE_URL") in started.stderr
    assert value not in started.stderr  # a secret is never printed


def test_a_real_secret_starts(tmp_path):
    started = run_python("import django; django.setup()", tmp_path, DJANGO_SECRET_KEY="k" + "x7Q" * 20)
    assert started.returncode == 0, started.stderr


# --- 8. The generated key, with many processes starting at once -------------------------------------
def test_processes_starting_at_once_share_one_generated_key(tmp_path):
    code = (
        "import io, os, time, dj_database_url, django.core.exceptions\n"
        # A slow disk: opening a file to write takes 0.2 s, so a process that
        # creates the key file and fills it afterwards is caught in between.
        "real_open = io.open\n"
        "def slow_open(file, mode='r', *args, **kwargs):\n"
        "    if set(mode) & set('wax+'):\n"
        "        time.sleep(0.2)\n"
        "    return real_open(file, mode, *args, **kwargs)\n"
        "io.open = slow_open\n"
        # Every process starts reading settings at the same instant, once all of them are ready.
        "print('ready', flush=True)\n"
        "start = float(input())\n"
        "time.sleep(max(0, start - time.time() - 0.02))\n"
        "while time.time() < start: pass\n"
        "import voiceproject.settings as s\n"
        "print(s.SECRET_KEY)\n"
    )
    data_dir = tmp_path / "data"
    environment = {**os.environ, "DJANGO_DATA_DIR": str(data_dir)}
    environment.pop("DJANGO_SECRET_KEY", None)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    assert [process.stdout.readline() for process in processes] == [b"ready\n"] * 8
    start = f"{time.time() + 0.1}\n".encode()
    for process in processes:
        process.stdin.write(start)
        process.stdin.flush()
    outputs = [process.communicate(timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err.decode()[-300:] for _, err in outputs]
    keys = [out.decode().strip() for out, _ in outputs]
    stored = (data_dir / "secret_key").read_text().strip()
    assert len(stored) > 40 and keys == [stored] * 8
    assert (data_dir / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".secret_key")] == []  # no temporary left
