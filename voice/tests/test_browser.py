"""The chat page in headless Chromium against a live Daphne with a file database.

Debian's chromium, driven by Playwright from PyPI; no browser is downloaded.
Screenshots for the README are written to docs/ by these tests.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from voice.testing import PASSWORD, DaphneServer, Site

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
THREE_SENTENCES = "Good morning to you. The kettle is already on. Would you like some tea or coffee?"
LONG_REPLY = " ".join(f"This is sentence number {n} of a rather long reply." for n in range(1, 25))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("browser-site")).setup()
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


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context
    context.close()


def log_in(page, server, next_path="/c/new/"):
    page.goto(f"{server.url}{next_path}")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))
    page.wait_for_function("window.voicePlayer !== undefined")


@pytest.fixture
def page(context, server):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    log_in(page, server)
    yield page
    assert errors == [], f"JavaScript errors: {errors}"


def send(page, text) -> int:
    """Send a query; return the index its reply will have among the page's replies."""
    index = page.locator(".message--assistant").count()
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("textbox", name="Message").press("Enter")
    return index


def wait_for_reply(page, index, status="complete"):
    """The id of the index-th assistant message once its reply is done."""
    page.wait_for_function(
        "([index, status]) => { const replies = [...document.querySelectorAll('.message--assistant')];"
        " const item = replies.at(index); if (!item) return false;"
        " const record = window.voiceReplies[item.dataset.messageId];"
        " return record && record.done && record.done.status === status; }",
        arg=[index, status],
    )
    return int(page.locator(".message--assistant").nth(index).get_attribute("data-message-id"))


def playback(page, message_id):
    return page.evaluate(f"window.voicePlayer.log.filter(entry => entry.messageId === {message_id})")


# --- Tests ----------------------------------------------------------------------
def test_anonymous_visitors_are_sent_to_the_login_page(context, server):
    page = context.new_page()
    page.goto(f"{server.url}/")
    assert page.url == f"{server.url}/accounts/login/?next=/"
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()


def test_a_reply_is_shown_and_played_gaplessly(page):
    index = send(page, THREE_SENTENCES)
    user_message = page.locator(".message--user .message__text").last
    assert user_message.text_content() == THREE_SENTENCES
    # The sentence being spoken is highlighted while its audio plays.
    page.wait_for_selector(".message--speaking mark")
    assert page.locator(".message--speaking mark").text_content() in {
        "Good morning to you.",
        "The kettle is already on.",
        "Would you like some tea or coffee?",
    }
    reply_id = wait_for_reply(page, index)
    assert page.locator(".message--assistant .message__text").last.text_content() == THREE_SENTENCES

    chunks = playback(page, reply_id)
    record = page.evaluate(f"window.voiceReplies[{reply_id}]")
    assert len(chunks) == record["audioEnd"]["chunks"] >= 3
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    for previous, following in itertools.pairwise(chunks):
        assert following["start"] == pytest.approx(previous["start"] + previous["duration"], abs=1e-6)
    scheduled = sum(c["duration"] for c in chunks)
    assert scheduled == pytest.approx(record["audioEnd"]["duration_ms"] / 1000, abs=0.002)
    assert scheduled == pytest.approx(record["bytes"] / 2 / 22050, abs=1e-6)
    # The context really runs: time passes through the scheduled audio.
    page.wait_for_function(f"window.voicePlayer.context.currentTime > {chunks[0]['start'] + 0.3}")
    assert page.evaluate("window.voicePlayer.context.state") == "running"

    latency = page.evaluate("window.voiceLatency")
    assert latency and latency[-1]["messageId"] == reply_id and 0 < latency[-1]["ms"] < 5000
    assert re.fullmatch(r"first sound \d+ ms", page.locator("#latency-badge").text_content())
    page.wait_for_selector(".message--speaking", state="detached", timeout=30_000)
    page.screenshot(path=DOCS / "screenshot-desktop.png")


def test_replay_plays_the_stored_audio(page):
    reply_id = wait_for_reply(page, send(page, "Replay me later."))
    duration = page.evaluate(f"window.voiceReplies[{reply_id}].audioEnd.duration_ms") / 1000
    page.reload()
    page.get_by_role("button", name="Replay this reply").last.click()
    page.wait_for_function(f"window.voicePlayer.log.some(e => e.messageId === {reply_id} && e.format === 'file')")
    (entry,) = [e for e in playback(page, reply_id) if e["format"] == "file"]
    assert entry["duration"] == pytest.approx(duration, abs=0.002)


@pytest.mark.parametrize("how", ["button", "escape"])
def test_stop_halts_playback_and_the_server_cancels(page, how):
    index = send(page, LONG_REPLY)
    page.wait_for_function("window.voicePlayer.log.length > 0")
    if how == "button":
        page.get_by_role("button", name="Stop speech").click()
    else:
        page.keyboard.press("Escape")
    reply_id = wait_for_reply(page, index, status="cancelled")
    assert page.evaluate("window.voicePlayer.playing") is False
    page.reload()
    stored = page.locator(f'[data-message-id="{reply_id}"]')
    assert stored.get_attribute("data-status") == "cancelled"
    assert len(stored.locator(".message__text").text_content()) <= len(LONG_REPLY)


def test_every_tab_shows_the_reply_but_only_the_asking_tab_plays(page, context):
    wait_for_reply(page, send(page, "Opening the conversation."))
    other = context.new_page()
    other.goto(page.url)
    other.wait_for_function("document.getElementById('chat').dataset.connection === 'open'")
    index = send(page, THREE_SENTENCES)
    reply_id = wait_for_reply(page, index)
    assert wait_for_reply(other, index) == reply_id
    assert other.locator(".message--assistant .message__text").last.text_content() == THREE_SENTENCES
    assert other.get_by_role("button", name="Replay this reply").last.is_visible()
    assert playback(page, reply_id) and playback(other, reply_id) == []


def test_markup_in_messages_is_shown_as_text(page):
    attack = '<img src=x onerror="window.pwned = true"> <b>bold?</b>'
    wait_for_reply(page, send(page, attack))
    assert page.locator(".message--user .message__text").last.text_content() == attack
    assert page.locator(".message--assistant .message__text").last.text_content() == attack
    page.reload()  # and when rendered by the server
    assert page.locator(".message--assistant .message__text").last.text_content() == attack
    assert page.locator("#messages img, #messages b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_keyboard_shift_enter_is_a_new_line(page):
    box = page.get_by_role("textbox", name="Message")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"
    assert page.locator(".message--user").count() == 0
    box.press("Enter")
    wait_for_reply(page, 0)
    assert page.locator(".message--user .message__text").last.text_content() == "first line\nsecond line"


def test_voice_and_speed_are_remembered_per_conversation(page):
    page.get_by_label("Speed").select_option("2.0")
    fast_id = wait_for_reply(page, send(page, "Speed makes this sentence shorter."))
    fast = page.evaluate(f"window.voiceReplies[{fast_id}].audioEnd.duration_ms")
    page.reload()
    assert page.get_by_label("Speed").input_value() == "2.0"
    with page.expect_response(re.compile(r"/settings/$")) as saved:
        page.get_by_label("Speed").select_option("0.75")
    assert saved.value.ok
    slow_id = wait_for_reply(page, send(page, "Speed makes this sentence shorter."))
    slow = page.evaluate(f"window.voiceReplies[{slow_id}].audioEnd.duration_ms")
    assert slow > 1.6 * fast  # measured: about 2x for 0.75x vs 2x
    page.reload()
    assert page.get_by_label("Speed").input_value() == "0.75"
    assert page.get_by_label("Voice").input_value() == ""


def test_the_page_reconnects_after_the_server_drops_and_sends_what_was_typed(page, server):
    wait_for_reply(page, send(page, "Before the outage."))
    server.stop()
    try:
        page.wait_for_function("document.getElementById('chat').dataset.connection === 'reconnecting'")
        assert "Reconnecting" in page.locator("#connection-status").text_content()
        index = send(page, "Typed during the outage.")
        assert page.locator(".message--pending").is_visible()
    finally:
        server.start()
    page.wait_for_function("document.getElementById('chat').dataset.connection === 'open'", timeout=40_000)
    wait_for_reply(page, index)
    assert page.locator(".message--assistant .message__text").last.text_content() == "Typed during the outage."
    assert page.locator(".message--pending").count() == 0


def test_phone_layout(browser, server):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    log_in(page, server)
    wait_for_reply(page, send(page, THREE_SENTENCES))
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for name in ("Send", "Stop speech", "Mute"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360
    page.wait_for_selector(".message--speaking", state="detached", timeout=30_000)
    page.screenshot(path=DOCS / "screenshot-phone.png", full_page=True)
    context.close()
