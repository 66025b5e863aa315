"""Fixtures and helpers for the tests that drive the chat page in Chromium.

Debian's chromium, driven by Playwright from PyPI; no browser is downloaded.
Each test module that imports ``server`` and ``browser`` gets one Daphne on a
scratch site and one browser for all its tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from voice.tests.servers import PASSWORD, DaphneServer, Site

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]
# Long enough to be still speaking when a test stops it.
LONG_REPLY = " ".join(f"This is sentence number {n} of a rather long reply." for n in range(1, 25))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # No segment cache: tests repeat their texts, and a reply the cache answers whole is complete before a
    # Stop pressed at once can reach the server (test_stop_before_the_first_sound... failed so, now and then).
    site = Site(tmp_path_factory.mktemp("browser-site"), VOICE_TTS_CACHE_MB="0").setup()
    daphne = DaphneServer(site).start()
    yield daphne
    daphne.stop()
    site.destroy()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_context(browser, viewport=DESKTOP, color_scheme="light", phone=False):
    context = browser.new_context(
        viewport=viewport, color_scheme=color_scheme, is_mobile=phone, has_touch=phone, reduced_motion="reduce"
    )
    context.set_default_timeout(20_000)
    return context


def log_in(page, server, next_path="/c/new/"):
    page.goto(f"{server.url}{next_path}")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))
    page.wait_for_function("window.voicePlayer !== undefined")


def deny_microphone(context, page, server) -> None:
    """The person said no to the microphone (in the browser's prompt or its site settings)."""
    session = context.new_cdp_session(page)
    within = session.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
    session.send(
        "Browser.setPermission",
        {"permission": {"name": "microphone"}, "setting": "denied", "origin": server.url, "browserContextId": within},
    )
    assert page.evaluate("navigator.permissions.query({name: 'microphone'}).then(status => status.state)") == "denied"


def watch_errors(page) -> list:
    """JavaScript errors of the page, to assert there were none."""
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    return errors


@pytest.fixture
def context(browser):
    context = new_context(browser)
    yield context
    context.close()


@pytest.fixture
def page(context, server):
    """A logged-in page of the module's server; the test fails on any JavaScript error it had.

    The first page of a server logs in through the form; the next ones start with its session
    cookie (the same login, without the password's deliberately slow hashing each time).
    """
    page = context.new_page()
    errors = watch_errors(page)
    session = getattr(server, "session_cookies", None)
    if session:
        context.add_cookies(session)
        page.goto(f"{server.url}/c/new/")
        page.wait_for_function("window.voicePlayer !== undefined")
    else:
        log_in(page, server)
        server.session_cookies = context.cookies()
    yield page
    assert errors == [], f"JavaScript errors: {errors}"


def box(page):
    return page.get_by_role("textbox", name="Message")


def send(page, text) -> int:
    """Send a query; return the index its reply will have among the page's replies."""
    index = page.locator(".message--assistant[data-message-id]").count()
    box(page).fill(text)
    box(page).press("Enter")
    return index


def wait_for_reply(page, index, status="complete"):
    """The id of the index-th assistant message once its reply is done and shown with ``status``.

    The shown status, not the one production ended with: a reply produced in
    full but cut while it was spoken ends ``interrupted`` too.
    """
    try:
        page.wait_for_function(
            "([index, status]) => {"
            " const replies = [...document.querySelectorAll('.message--assistant[data-message-id]')];"
            " const item = replies.at(index); if (!item) return false;"
            " const record = window.voiceReplies[item.dataset.messageId];"
            " return record && record.done && item.dataset.status === status; }",
            arg=[index, status],
        )
    except PlaywrightTimeout:
        seen = page.evaluate(
            "(index) => {"
            " const item = [...document.querySelectorAll('.message--assistant[data-message-id]')].at(index);"
            " if (!item) return 'no such reply'; const record = window.voiceReplies[item.dataset.messageId];"
            " return {status: item.dataset.status, done: Boolean(record && record.done),"
            " connection: document.getElementById('chat').dataset.connection,"
            " error: document.getElementById('chat-error-text')?.textContent}; }",
            index,
        )
        raise AssertionError(f"reply {index} never showed {status!r} and done; it shows {seen}") from None
    return int(page.locator(".message--assistant[data-message-id]").nth(index).get_attribute("data-message-id"))


def wait_until_open(page):
    page.wait_for_function("document.getElementById('chat').dataset.connection === 'open'", timeout=40_000)


def playback(page, message_id):
    return page.evaluate(f"window.voicePlayer.log.filter(entry => entry.messageId === {message_id})")


def reply_text(page, index=-1):
    return page.locator(".message--assistant[data-message-id] .message__text").nth(index).text_content()
