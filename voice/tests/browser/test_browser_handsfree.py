"""Hands-free mode in Chromium: a fake microphone plays what the project's own voice says; no button is pressed.

Each scenario is a WAV file the test writes (Piper, 16 kHz) and a Chromium
whose fake capture device plays it once (``%noloop``) from the moment the
page opens the microphone, then silence. The page streams it on the chat
socket; the server's VAD finds the turns, Whisper hears them, and the
replies (read back, in Piper's voice) play in the page.
"""

from __future__ import annotations

import wave

import numpy as np
import pytest

from bench.stt import spoken, word_error_rate
from voice import audio
from voice.stt import SAMPLE_RATE
from voice.tests import pages
from voice.tests.pages import (
    CHROMIUM,
    CHROMIUM_ARGS,
    deny_microphone,
    log_in,
    new_context,
    send,
    wait_for_reply,
    watch_errors,
)

pytestmark = [pytest.mark.browser, pytest.mark.realtime]
server = pages.server  # one Daphne for the module

FIRST = "What time does the library close on Saturday?"
SECOND = "How do I reset my password?"
REPLY = "The museum is open every day except Monday. Tickets are cheaper for students and children."
OVER = "Wait, tell me about the weekend in London instead."
HEARD = 60_000  # ms: Whisper and Piper share two cores with the browser
# The page's sockets, kept for a test to drop one as a network would.
KEEP_SOCKETS = """() => { window.chatSockets = []; const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.chatSockets.push(this); } }; }"""


def seconds(n: float) -> np.ndarray:
    return np.zeros(int(n * SAMPLE_RATE), dtype=np.float32)


def voice(text: str, gain: float = 1.0) -> np.ndarray:
    return np.frombuffer(spoken(text), dtype="<i2").astype(np.float32) / 32768 * gain


def noise_and_clicks() -> np.ndarray:
    rng = np.random.default_rng(3)
    sound = rng.normal(0, 0.03, 6 * SAMPLE_RATE).astype(np.float32)
    for at in range(SAMPLE_RATE // 2, 6 * SAMPLE_RATE, SAMPLE_RATE // 2):
        sound[at : at + 40] = 0.9  # a click every half second
    return sound


SCENARIOS = {
    "two_questions": lambda: np.concatenate([seconds(1), voice(FIRST), seconds(6), voice(SECOND), seconds(4)]),
    "over_the_reply": lambda: np.concatenate([seconds(5), voice(OVER), seconds(4)]),  # the reply plays by then
    # The reply's own words in its own voice, a little quieter: what a speaker next to the microphone sends back.
    "echo": lambda: np.concatenate([seconds(1.5), voice(REPLY, 0.5), seconds(4)]),
    "noise": noise_and_clicks,
    # Long enough to drop the connection and come back before the question.
    "after_a_reconnect": lambda: np.concatenate([seconds(8), voice(FIRST), seconds(4)]),
}


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def microphone(request, playwright, server, tmp_path):
    """A logged-in page whose fake microphone plays scenario ``request.param`` once."""
    path = tmp_path / f"{request.param}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(audio.to_pcm16(SCENARIOS[request.param]()))
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={path}%noloop",
    ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    context = new_context(browser)
    context.grant_permissions(["microphone"], origin=server.url)
    page = context.new_page()
    page.add_init_script(f"({KEEP_SOCKETS})()")
    errors = watch_errors(page)
    log_in(page, server)
    yield page
    context.close()
    browser.close()
    path.unlink()
    assert errors == [], f"JavaScript errors: {errors}"


def hands_free_on(page) -> None:
    button = page.get_by_role("button", name="Hands-free")
    assert button.get_attribute("aria-pressed") == "false"
    button.click()
    page.wait_for_selector('#hands-free[aria-pressed="true"]')
    page.wait_for_function("window.voiceHandsFree.listening", timeout=30_000)


def queries(server, after: int = 0) -> list[tuple[str, str]]:
    return server.site.fetch(
        f"SELECT text, client_id FROM voice_message WHERE role = 'user' AND id > {after} ORDER BY id"
    )


def last_id(server) -> int:
    return server.site.fetch("SELECT coalesce(max(id), 0) FROM voice_message")[0][0]


def statuses(server, after: int) -> list[str]:
    return [
        s
        for (s,) in server.site.fetch(
            f"SELECT status FROM voice_message WHERE role = 'assistant' AND id > {after} ORDER BY id"
        )
    ]


def streamed(page, seconds_of_audio: float) -> None:
    """Wait until the page has sent this much of the microphone."""
    page.wait_for_function(f"window.voiceHandsFree.bytesSent >= {seconds_of_audio * SAMPLE_RATE * 2}", timeout=HEARD)


@pytest.mark.parametrize("microphone", ["two_questions"], indirect=True)
def test_two_questions_with_a_pause_are_asked_and_answered_without_a_button(microphone, server):
    page, before = microphone, last_id(server)
    hands_free_on(page)
    assert page.locator("#handsfree-status").is_visible()
    page.wait_for_function("['listening', 'hearing'].includes(window.voiceHandsFree.state)")
    wait_for_reply(page, 1)  # the second reply, complete
    asked = queries(server, before)
    assert len(asked) == 2 and all(client_id.startswith("h-") for _, client_id in asked)
    for said, (text, _) in zip([FIRST, SECOND], asked, strict=True):
        assert word_error_rate([said], [text]) <= 0.2, (said, text)
    # Each turn's bubble became its stored message; both replies were played here.
    assert page.locator(".message--user").count() == 2 and page.locator(".message--provisional").count() == 0
    played = {entry["messageId"] for entry in page.evaluate("window.voicePlayer.log")}
    assert len(played) == 2
    assert [t["phase"] for t in page.evaluate("window.voiceHandsFree.turns")].count("ended") == 2
    # Off: the microphone is let go and the server stops listening.
    page.get_by_role("button", name="Hands-free").click()
    page.wait_for_selector('#hands-free[aria-pressed="false"]')
    page.wait_for_function("!window.voiceHandsFree.listening && window.voiceHandsFree.state === 'off'")
    assert page.locator("#handsfree-status").is_hidden()


@pytest.mark.parametrize("microphone", ["over_the_reply"], indirect=True)
def test_speaking_over_the_reply_interrupts_it_and_is_answered(microphone, server):
    page, before = microphone, last_id(server)
    hands_free_on(page)
    send(page, REPLY)  # typed: its reply is read back, and the person talks over it
    page.wait_for_function("window.voicePlayer.playing", timeout=HEARD)
    first = int(page.locator(".message--assistant[data-message-id]").first.get_attribute("data-message-id"))
    page.wait_for_function(
        f"document.querySelector('[data-message-id=\"{first}\"]')?.dataset.status === 'interrupted'", timeout=HEARD
    )
    wait_for_reply(page, 1)  # the spoken question's answer
    assert statuses(server, before) == ["interrupted", "complete"]
    (typed, spoken_query) = queries(server, before)
    assert typed[0] == REPLY and word_error_rate([OVER], [spoken_query[0]]) <= 0.2
    # Paused in this tab as soon as the voice began (applied: it was the reply sounding here), then stopped.
    assert page.evaluate(f"window.voiceHandsFree.ducked.some(d => d.message_id === {first} && d.on && d.applied)")
    assert page.evaluate("window.voicePlayer.duckedId === null && window.voicePlayer.context.state === 'running'")
    # The interrupted reply stopped in the page, well before its end.
    heard_ms = server.site.fetch(f"SELECT heard_ms, duration_ms FROM voice_message WHERE id = {first}")[0]
    assert heard_ms[0] is not None and (heard_ms[1] is None or heard_ms[0] < heard_ms[1])


@pytest.mark.parametrize("microphone", ["echo"], indirect=True)
def test_the_assistants_own_voice_neither_interrupts_it_nor_asks_anything(microphone, server):
    page, before = microphone, last_id(server)
    hands_free_on(page)
    send(page, REPLY)
    reply = wait_for_reply(page, 0)
    streamed(page, 12)  # the whole echo and the silence after it
    page.wait_for_function(
        "window.voiceHandsFree.turns.some(t => t.phase === 'discarded') || window.voiceHandsFree.turns.length === 0"
    )
    assert [text for text, _ in queries(server, before)] == [REPLY]  # the typed one only
    assert statuses(server, before) == ["complete"]
    turns = page.evaluate("window.voiceHandsFree.turns")
    # Heard (or not even that), then judged to be the reply's own words: nothing was asked.
    discarded = {t["turn_id"]: t["reason"] for t in turns if t["phase"] == "discarded"}
    assert set(discarded.values()) <= {"echo"}
    assert {t["turn_id"] for t in turns if t["phase"] == "speaking"} == set(discarded)
    assert page.locator(f'[data-message-id="{reply}"]').get_attribute("data-status") == "complete"
    # While the reply sounded, each microphone frame was followed by where playback stood (for the server's
    # echo canceller), and the server took them: no error came back.
    assert page.evaluate("window.voiceHandsFree.positionsSent") >= 10
    assert page.locator("#chat-error-text").text_content() == ""


@pytest.mark.parametrize("microphone", ["noise"], indirect=True)
def test_noise_and_clicks_store_nothing(microphone, server):
    page, before = microphone, last_id(server)
    hands_free_on(page)
    streamed(page, 8)
    page.wait_for_function("window.voiceHandsFree.level > 0")  # the meter moved: the noise was heard
    assert queries(server, before) == []
    assert not [t for t in page.evaluate("window.voiceHandsFree.turns") if t["phase"] == "ended"]
    assert page.evaluate("window.voiceHandsFree.state") == "listening"


@pytest.mark.parametrize("microphone", ["after_a_reconnect"], indirect=True)
def test_hands_free_comes_back_after_the_connection_drops(microphone, server):
    page, before = microphone, last_id(server)
    hands_free_on(page)
    page.evaluate("window.chatSockets.at(-1).close()")  # the connection drops, as a network's does
    page.wait_for_function("document.getElementById('chat').dataset.connection === 'reconnecting'")
    assert page.get_by_role("button", name="Hands-free").get_attribute("aria-pressed") == "true"  # still on
    page.wait_for_function("document.getElementById('chat').dataset.connection === 'open'")
    page.wait_for_function("window.voiceHandsFree.listening")  # listen.start again, by itself
    wait_for_reply(page, 0)
    ((text, client_id),) = queries(server, before)
    assert word_error_rate([FIRST], [text]) <= 0.2 and client_id.startswith("h-")


def test_a_blocked_microphone_is_explained_and_the_mode_stays_off(playwright, server):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
    )
    context = new_context(browser)
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, server)
    deny_microphone(context, page, server)
    button = page.get_by_role("button", name="Hands-free")
    button.focus()
    page.keyboard.press("Enter")  # reachable by keyboard
    page.wait_for_selector("#chat-error:not([hidden])")
    assert page.locator("#chat-error-text").text_content().startswith("The microphone is blocked for this page.")
    assert button.get_attribute("aria-pressed") == "false" and page.evaluate("window.voiceHandsFree.state") == "off"
    assert page.locator("#handsfree-status").is_hidden()
    context.close()
    browser.close()
    assert errors == []
