"""manage.py commands: the voices, the demo login (models/ synthesizes with the real voice)."""

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory

from voice.tests.helpers import run_command


def test_voices_lists_every_engine():
    table = run_command("voices")
    assert "en_US-joe-medium *" in table
    lines = table.splitlines()
    assert any(line.split()[:2] == ["gtts", "en:co.uk"] for line in lines)


@pytest.mark.django_db
def test_demouser_prints_a_working_login():
    report = run_command("demouser", "--username", "demo")
    password = report.split("password: ")[1].split()[0]
    # As a login form does: the login throttle (django-axes) needs the request.
    login = RequestFactory().post("/accounts/login/")
    user = authenticate(login, username="demo", password=password)
    assert user is not None and user.is_staff and user.has_perm("voice.view_conversation")
    again = run_command("demouser", "--username", "demo")
    assert "reset" in again and authenticate(login, username="demo", password=password) is None
