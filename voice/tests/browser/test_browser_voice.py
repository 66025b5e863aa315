"""Talking to the chat page in Chromium: a fake microphone that says a Piper sentence, heard by Whisper on the server.

Chromium's fake capture device plays a WAV file the test writes (our Piper
voice, with a second of silence either side; Chromium loops it), and
``--use-fake-ui-for-media-stream`` answers the permission prompt. No mocks:
the page records through its AudioWorklet, streams PCM16 on the chat socket,
and the server transcribes, stores and answers as it does for anyone.
"""

from __future__ import annotations

import wave

import pytest
from playwright.sync_api import TimeoutError

from bench.stt import spoken
from voice.stt import SAMPLE_RATE
from voice.tests import pages
from voice.tests.pages import (
    CHROMIUM,
    CHROMIUM_ARGS,
    box,
    deny_microphone,
    log_in,
    new_context,
    playback,
    send,
    wait_for_reply,
    watch_errors,
)

pytestmark = pytest.mark.browser
server = pages.server  # one Daphne for the module

# A sentence Whisper base hears exactly in our Piper voice, also through the browser's echo canceller
# ("What is the capital of France?" comes out as "…of friends?" about half of the time).
QUESTION = "What time does the library close on Saturday?"
HEARD = 60_000  # ms: transcription shares two cores with everything else
SILENCE = bytes(SAMPLE_RATE * 2)  # one second of PCM16
# Every frame the page sends on its socket, kept for the test to read.
RECORD_SENT = """() => { window.sentFrames = []; const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    window.sentFrames.push(typeof data === 'string' ? data : `binary ${data.byteLength}`);
    return send.call(this, data);
  }; }"""


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """The question in our Piper voice, as the fake microphone's 16 kHz PCM16 WAV file."""
    path = tmp_path_factory.mktemp("microphone") / "question.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(SILENCE + spoken(QUESTION) + SILENCE)
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright, speech_wav):
    """Chromium with a fake microphone saying the question (permission prompts answered yes)."""
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_wav}",
    ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_that_asks(playwright):
    """Chromium with a (silent) fake microphone, whose permission prompts nobody answers."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
    )
    yield browser
    browser.close()


@pytest.fixture
def context(browser, server):
    context = new_context(browser)
    context.grant_permissions(["microphone"], origin=server.url)
    yield context
    context.close()


@pytest.fixture
def page(context, server):
    page = context.new_page()
    page.add_init_script(f"({RECORD_SENT})()")
    errors = watch_errors(page)
    log_in(page, server)
    yield page
    assert errors == [], f"JavaScript errors: {errors}"


def mic(page):
    return page.get_by_role("button", name="Hold to talk")


def hold(page):
    """Press the mouse on the mic button, and keep it down."""
    found = mic(page).bounding_box()
    page.mouse.move(found["x"] + found["width"] / 2, found["y"] + found["height"] / 2)
    page.mouse.down()


def count(server, sql="SELECT count(*) FROM voice_message WHERE role = 'user'") -> int:
    return server.site.fetch(sql)[0][0]


def sent(page) -> list[str]:
    return page.evaluate("window.sentFrames")


# --- Tests ----------------------------------------------------------------------
def test_holding_the_button_asks_aloud_and_the_reply_is_spoken(page, server):
    button = mic(page)
    assert button.get_attribute("aria-pressed") == "false" and button.is_enabled()
    hold(page)
    page.wait_for_selector('#mic[aria-pressed="true"]')
    page.wait_for_selector("#mic-status:not([hidden])")
    assert page.locator("#mic-status").text_content().count("Listening…") == 1
    # The level meter moves with the voice, and the words show as they are heard.
    page.wait_for_function("Number(document.getElementById('mic-level').dataset.level) > 0.3", timeout=HEARD)
    provisional = page.locator(".message--provisional .message__text")
    try:
        page.wait_for_function(
            "() => /saturday/i.test(document.querySelector('.message--provisional .message__text')?.textContent)",
            timeout=HEARD,
        )
    except TimeoutError as error:
        raise AssertionError(f"heard only {page.evaluate('window.voiceMic')}") from error
    assert page.evaluate("window.voiceMic.transcripts.some(t => !t.final)")
    assert provisional.count() == 1
    page.mouse.up()
    page.wait_for_selector('#mic[aria-pressed="false"]')
    page.wait_for_selector("#mic-status", state="hidden")
    # The final transcript becomes the user's message (once: the bubble gives way to it), and is answered.
    reply_id = wait_for_reply(page, 0)
    said = page.locator(".message--user .message__text")
    assert said.count() == 1 and page.locator(".message--provisional").count() == 0
    text = said.text_content()
    assert "library" in text.lower() and "saturday" in text.lower()
    assert playback(page, reply_id), "the reply was not played"
    page.wait_for_function(f"window.voicePlayer.context.currentTime > {playback(page, reply_id)[0]['start'] + 0.3}")
    # Stored as spoken: the recording is attached, under the page's client_id.
    ((stored, audio, client_id),) = server.site.fetch(
        "SELECT text, audio, client_id FROM voice_message WHERE role = 'user' ORDER BY id DESC LIMIT 1"
    )
    assert stored == text and audio and client_id
    frames = sent(page)
    (start,) = [f for f in frames if '"speech.start"' in f]
    assert '"format":"pcm_s16le"' in start and '"sample_rate":16000' in start
    assert f'{{"type":"speech.end","client_id":"{client_id}"}}' in frames
    # The conversation is named after what was said.
    assert "library" in page.get_by_role("heading", level=1).text_content().lower()
    # Shown as spoken, its recording playable under its own name: live, and as the server renders it.
    for _ in ("live", "from the server"):
        asked = page.locator(".message--user")
        assert asked.locator(".message__voice").text_content() == "Spoken"
        assert asked.get_by_role("button", name="Play your message 1").is_visible()
        assert asked.get_by_role("slider", name="Position in your message 1").get_attribute("max") != "0"
        page.reload()


def test_escape_throws_the_utterance_away(page, server):
    before = count(server)
    hold(page)
    page.wait_for_function("window.voiceMic.bytesSent >= 32000", timeout=HEARD)  # a second of audio went
    page.keyboard.press("Escape")
    page.wait_for_selector('#mic[aria-pressed="false"]')
    assert page.locator(".message--provisional").count() == 0
    page.mouse.up()  # letting go afterwards sends nothing
    # The socket handles events in order: once a typed query is answered, the cancel was handled.
    wait_for_reply(page, send(page, "Typed after a cancel."))
    assert [m.text_content() for m in page.locator(".message--user .message__text").all()] == ["Typed after a cancel."]
    frames = sent(page)
    assert '{"type":"speech.cancel"}' in frames and not [f for f in frames if '"speech.end"' in f]
    assert count(server) == before + 1
    newest = "SELECT text, audio FROM voice_message WHERE role = 'user' ORDER BY id DESC LIMIT 1"
    assert server.site.fetch(newest) == [("Typed after a cancel.", "")]


def test_a_blocked_microphone_is_explained_and_the_page_still_works(browser_that_asks, server):
    context = new_context(browser_that_asks)
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, server)
    deny_microphone(context, page, server)
    mic(page).click()
    page.wait_for_selector("#chat-error:not([hidden])")
    blocked = "The microphone is blocked for this page."
    assert page.locator("#chat-error-text").text_content().startswith(blocked)
    assert mic(page).is_disabled() and mic(page).get_attribute("aria-pressed") == "false"
    assert page.locator("#mic-note").text_content().startswith(blocked)
    assert page.locator(".message--provisional").count() == 0
    # Typing still works.
    wait_for_reply(page, send(page, "Typed instead."))
    assert errors == []
    context.close()


def heard(page, words="saturday"):
    """Wait until a partial transcript has ``words`` in it."""
    page.wait_for_function(
        "words => window.voiceMic.transcripts.some(t => !t.final && t.text.toLowerCase().includes(words))",
        arg=words,
        timeout=HEARD,
    )


def test_a_tap_toggles_and_space_talks(page):
    # A quick tap starts; letting go does not stop; a second tap sends.
    mic(page).click()
    heard(page)
    assert mic(page).get_attribute("aria-pressed") == "true"
    mic(page).click()
    page.wait_for_selector('#mic[aria-pressed="false"]')
    wait_for_reply(page, 0)
    # Space held outside the message box talks too; in the box it is a space.
    page.evaluate("window.voiceMic.transcripts = []")
    page.locator("#messages").focus()
    page.keyboard.down(" ")
    page.wait_for_selector('#mic[aria-pressed="true"]')
    heard(page)
    page.keyboard.up(" ")
    page.wait_for_selector('#mic[aria-pressed="false"]')
    wait_for_reply(page, 1)
    said = [m.text_content().lower() for m in page.locator(".message--user .message__text").all()]
    assert len(said) == 2 and all("library" in text for text in said), said
    box(page).press(" ")
    assert box(page).input_value() == " " and mic(page).get_attribute("aria-pressed") == "false"
