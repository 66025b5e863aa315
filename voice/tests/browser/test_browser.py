"""The chat page in headless Chromium against a live Daphne with a file database.

Debian's chromium, driven by Playwright from PyPI; no browser is downloaded.
Screenshots for the README come from `make screenshots`, never from the suite.
"""

from __future__ import annotations

import itertools
import re

import pytest

from voice.tests import pages
from voice.tests.pages import (
    LONG_REPLY,
    PHONE,
    box,
    log_in,
    new_context,
    playback,
    reply_text,
    send,
    wait_for_reply,
    wait_until_open,
)
from voice.tests.servers import DaphneServer, Site

pytestmark = pytest.mark.browser
# One Daphne and one Chromium for the module; a fresh logged-in page per test.
server, browser, context, page = pages.server, pages.browser, pages.context, pages.page

THREE_SENTENCES = "Good morning to you. The kettle is already on. Would you like some tea or coffee?"


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
    # Speaking shows without moving the text.
    speaking_box = page.locator(".message--speaking .message__text").bounding_box()
    reply_id = wait_for_reply(page, index)
    assert reply_text(page) == THREE_SENTENCES

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
    assert page.locator(f'[data-message-id="{reply_id}"] .message__text').bounding_box() == speaking_box
    # Screenshots for the README come from `make screenshots`, not from here.


def test_a_reply_the_server_ended_shows_what_was_said_and_why(page):
    """Cut for repetition (voice/cutoffs.py): the bubble ends where the speech did, and says why, live and reloaded."""
    said = "A port is a number that identifies a program."
    reply_id = wait_for_reply(page, send(page, f"{said} A port is a port is a port is a port is a port is a port."))
    note = page.locator(f'[data-message-id="{reply_id}"] .message__cut')
    assert (reply_text(page), note.text_content()) == (said, "Reply stopped: it was repeating itself")
    assert note.is_visible() and page.evaluate(f"window.voiceReplies[{reply_id}].done.cut") == "repetition"
    page.reload()
    assert (reply_text(page), note.text_content()) == (said, "Reply stopped: it was repeating itself")


def test_a_stored_reply_replays_and_seeks(page):
    reply_id = wait_for_reply(page, send(page, LONG_REPLY[:400]))
    duration = page.evaluate(f"window.voiceReplies[{reply_id}].audioEnd.duration_ms") / 1000
    page.reload()
    play = page.get_by_role("button", name="Play reply 1")
    with page.expect_response(lambda response: "/audio/" in response.url) as first:
        play.click()
    assert first.value.status == 206 and first.value.headers["accept-ranges"] == "bytes"
    page.wait_for_function(f"window.voicePlayer.log.some(e => e.messageId === {reply_id} && e.format === 'file')")
    (entry,) = [e for e in playback(page, reply_id) if e["format"] == "file"]
    assert entry["duration"] == pytest.approx(duration, abs=0.05)
    # Playing: the button pauses, Stop is offered, the clock moves.
    pause = page.get_by_role("button", name="Pause reply 1")
    assert pause.is_visible() and page.get_by_role("button", name="Stop speech").is_visible()
    page.wait_for_function("document.querySelector('.replay__time').textContent.startsWith('0:01')")
    pause.click()
    page.wait_for_selector("#stop[hidden]", state="attached")
    # Seek far ahead with the keyboard, paused: the audio is there at once.
    seek = page.get_by_role("slider", name="Position in reply 1")
    seek.focus()
    for _ in range(3):
        seek.press("PageUp")
    target = float(seek.input_value()) / 1000
    assert target > 0.25 * duration
    page.wait_for_function("target => Math.abs(window.voiceReplay.audio.currentTime - target) < 0.2", arg=target)
    assert page.evaluate("window.voiceReplay.audio.seekable.end(0)") == pytest.approx(duration, abs=0.05)
    # The clock follows on "seeked", an event that comes after currentTime has changed.
    page.wait_for_function(
        "label => document.querySelector('.replay__time').textContent.startsWith(label)", arg=f"0:{int(target):02d}"
    )
    # Played from there.
    page.get_by_role("button", name="Play reply 1").click()
    page.wait_for_function("target => window.voiceReplay.audio.currentTime > target + 0.3", arg=target)


@pytest.mark.parametrize("how", ["button", "escape"])
def test_stop_halts_playback_and_the_server_cancels(page, server, how):
    index = send(page, LONG_REPLY)
    page.wait_for_function("window.voicePlayer.playingMessageId !== null")
    playing = page.evaluate("window.voicePlayer.playingMessageId")
    page.wait_for_function(f"window.voicePlayer.heardMs({playing}) > 300")
    if how == "button":
        page.get_by_role("button", name="Stop speech").click()
    else:
        page.keyboard.press("Escape")
    reply_id = wait_for_reply(page, index, status="cancelled")
    assert reply_id == playing and page.evaluate("window.voicePlayer.playing") is False
    page.reload()
    stored = page.locator(f'[data-message-id="{reply_id}"]')
    assert stored.get_attribute("data-status") == "cancelled"
    # The server stopped early and knows how much was heard: part of what it had said.
    ((heard_ms, duration_ms),) = server.site.fetch(
        "SELECT heard_ms, duration_ms FROM voice_message WHERE id = %s", reply_id
    )
    full_ms = 24 * 2500  # 24 sentences of at least 2.5 s each
    assert 300 <= heard_ms <= duration_ms < full_ms


def test_every_tab_shows_the_reply_but_only_the_asking_tab_plays(page, context):
    wait_for_reply(page, send(page, "Opening the conversation."))
    other = context.new_page()
    other.goto(page.url)
    other.wait_for_function("document.getElementById('chat').dataset.connection === 'open'")
    index = send(page, THREE_SENTENCES)
    reply_id = wait_for_reply(page, index)
    assert wait_for_reply(other, index) == reply_id
    assert reply_text(other) == THREE_SENTENCES
    assert other.get_by_role("button", name=re.compile(r"^Play reply \d+$")).last.is_visible()
    assert playback(page, reply_id) and playback(other, reply_id) == []


def test_markup_in_messages_is_shown_as_text(page):
    attack = '<img src=x onerror="window.pwned = true"> <b>bold?</b>'
    wait_for_reply(page, send(page, attack))
    assert page.locator(".message--user .message__text").last.text_content() == attack
    assert reply_text(page) == attack  # raw HTML in markdown is shown as text
    page.reload()  # and when rendered by the server
    assert reply_text(page) == attack
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
    assert reply_text(page) == "Typed during the outage."
    assert page.locator(".message--pending").count() == 0


def test_phone_layout(browser, server):
    context = new_context(browser, PHONE, phone=True)
    page = context.new_page()
    log_in(page, server)
    wait_for_reply(page, send(page, LONG_REPLY))
    # One screen: no page scroll either way; the composer and its controls are in view.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollHeight") <= PHONE["height"]
    for control in (
        box(page),
        page.get_by_role("button", name="Send"),
        page.get_by_label("Speed"),
        page.get_by_role("button", name="Mute speech"),
    ):
        found = control.bounding_box()
        assert found["x"] >= 0 and found["x"] + found["width"] <= PHONE["width"]
        assert found["y"] >= 0 and found["y"] + found["height"] <= PHONE["height"], control
    # The conversation list is a drawer: off screen until asked for, taking no room from the chat.
    assert not page.get_by_role("link", name="New conversation").is_visible()
    chat = page.locator("#chat").bounding_box()
    topbar = page.locator(".topbar").bounding_box()
    assert chat["x"] == 0 and chat["width"] == PHONE["width"]
    assert chat["y"] == topbar["height"] and chat["y"] + chat["height"] == PHONE["height"]
    page.get_by_role("button", name="Conversations").click()
    assert page.get_by_role("link", name="New conversation").is_visible()
    drawer = page.locator("#sidebar").bounding_box()
    assert drawer["x"] == 0 and drawer["width"] < PHONE["width"] and page.locator("#chat").bounding_box() == chat
    page.get_by_role("button", name="Close conversations").click()
    page.wait_for_selector("#sidebar", state="hidden")
    context.close()


# --- Barge-in ----------------------------------------------------------------------
ENTER_TIME = """() => document.addEventListener("keydown", (event) => {
  if (event.key === "Enter") window.enterAt = performance.timeOrigin + performance.now();
}, { capture: true, once: true })"""


def playing_id(page):
    return page.evaluate("window.voicePlayer.playingMessageId")


def test_a_new_query_interrupts_the_reply_being_spoken(page, context):
    watching = context.new_page()
    index = send(page, LONG_REPLY)
    page.wait_for_function("window.voicePlayer.playingMessageId !== null")
    old_id = playing_id(page)
    watching.goto(page.url)
    watching.wait_for_function("document.getElementById('chat').dataset.connection === 'open'")
    page.wait_for_function(f"window.voicePlayer.heardMs({old_id}) > 500")
    box = page.get_by_role("textbox", name="Message")
    box.fill("A new question.")
    page.evaluate(ENTER_TIME)
    box.press("Enter")
    # The old reply stops sounding at once, and ends interrupted in every tab.
    stop = page.evaluate("window.voicePlayer.lastStop")
    assert stop["messageId"] == old_id and stop["at"] - page.evaluate("window.enterAt") < 150
    assert wait_for_reply(page, index, status="interrupted") == old_id
    assert wait_for_reply(watching, index, status="interrupted") == old_id
    new_id = wait_for_reply(page, index + 1)
    assert playback(page, new_id), "the new reply did not play"
    # Nothing more of the old reply was scheduled after the stop.
    assert not [c for c in playback(page, old_id) if c["scheduledAt"] > stop["now"]]
    page.reload()
    old = page.locator(f'[data-message-id="{old_id}"]')
    assert old.get_attribute("data-status") == "interrupted"
    assert [m.text_content() for m in page.locator(".message--user .message__text").all()] == [
        LONG_REPLY,
        "A new question.",
    ]


def test_a_query_from_another_tab_silences_this_one(page, context):
    other = context.new_page()
    index = send(page, LONG_REPLY)
    page.wait_for_function("window.voicePlayer.playingMessageId !== null")
    old_id = playing_id(page)
    other.goto(page.url)
    other.wait_for_function("document.getElementById('chat').dataset.connection === 'open'")
    # When the other tab's Enter goes down (both tabs share one clock).
    other.evaluate(ENTER_TIME)
    send(other, "Asked from another tab.")
    page.wait_for_function("window.voicePlayer.lastStop !== null")
    stop = page.evaluate("window.voicePlayer.lastStop")
    assert stop["messageId"] == old_id and stop["at"] - other.evaluate("window.enterAt") < 150
    assert wait_for_reply(page, index, status="interrupted") == old_id
    # The silenced tab told the server how much it heard.
    page.reload()
    assert page.locator(f'[data-message-id="{old_id}"]').get_attribute("data-status") == "interrupted"


def test_a_refused_query_stays_in_the_box(page):
    box = page.get_by_role("textbox", name="Message")
    too_long = "x" * 2001
    page.evaluate("document.getElementById('query').removeAttribute('maxlength')")
    box.fill(too_long)
    box.press("Enter")
    page.wait_for_selector("#chat-error:not([hidden])")
    assert box.input_value() == too_long
    assert page.locator(".message--user").count() == 0


# --- Stop sticks ------------------------------------------------------------------------
NOTHING_SPEAKS = """() => !document.querySelector('.message--speaking, .message__text mark')
    && document.getElementById('stop').hidden && !window.voicePlayer.playing"""


def test_stop_sticks(page):
    index = send(page, LONG_REPLY)
    page.wait_for_function("window.voicePlayer.playingMessageId !== null")
    reply_id = page.evaluate("window.voicePlayer.playingMessageId")
    page.wait_for_function(f"window.voicePlayer.heardMs({reply_id}) > 300")
    # Chunks queued ahead (synthesis is faster than speech): their start callbacks are pending.
    page.wait_for_function("window.voicePlayer.timers.size >= 2")
    page.evaluate("document.getElementById('chat-error').hidden = false")  # an old error line
    page.get_by_role("button", name="Stop speech").click()
    page.wait_for_function(NOTHING_SPEAKS)
    stopped = page.evaluate("window.voicePlayer.lastStop")
    assert page.locator("#chat-error").is_hidden()
    wait_for_reply(page, index, status="cancelled")
    # Nothing turns back on: no chunk scheduled after Stop, nothing speaking 2 s later.
    page.wait_for_timeout(2000)
    assert page.evaluate(NOTHING_SPEAKS)
    assert not [c for c in playback(page, reply_id) if c["scheduledAt"] > stopped["now"]]
    assert page.evaluate("window.voicePlayer.timers.size") == 0


def test_stop_before_the_first_sound_silences_the_reply(page):
    index = send(page, LONG_REPLY)
    page.keyboard.press("Escape")  # at once: no audio has arrived yet
    reply_id = wait_for_reply(page, index, status="cancelled")
    page.wait_for_timeout(1000)
    assert playback(page, reply_id) == [] and page.evaluate(NOTHING_SPEAKS)


def test_a_late_catch_up_never_takes_an_ended_reply_back_to_streaming(page):
    # The page catches up over HTTP as its socket opens; that answer can be read while the reply
    # still streams and arrive after the live events that ended it.
    held = []
    page.route(re.compile(r"/c/\d+/messages/"), lambda route: held.append(route))
    index = send(page, LONG_REPLY)
    page.keyboard.press("Escape")
    reply_id = wait_for_reply(page, index, status="cancelled")
    while not held:
        page.wait_for_timeout(20)
    response = held[0].fetch()
    stale = response.json()
    for message in stale["messages"]:
        if message["id"] == reply_id:
            message["status"] = "streaming"  # as it was when the server read it
    held[0].fulfill(response=response, json=stale)
    page.wait_for_function("document.getElementById('chat').dataset.caughtUp")
    item = page.locator(f'.message--assistant[data-message-id="{reply_id}"]')
    assert item.get_attribute("data-status") == "cancelled"


def test_stop_while_a_new_conversations_first_query_waits_cancels_its_reply(page, server):
    # Stop pressed while the first query of a new conversation waits to be sent (the conversation
    # is being created: no socket yet). The query must go with a cancel right behind it: else the
    # tab asks for the cancel only once its reply's first event is back, and a fast reply is stored
    # complete by then. Here no event reaches the tab until the reply has ended on the server.
    creating = []
    page.route(lambda url: url.endswith("/c/"), lambda route: creating.append(route))
    sockets, to_page, holding = [], [], [True]

    def hold_what_the_server_says(socket):
        sockets.append(socket)
        upstream = socket.connect_to_server()  # the page's frames still go up at once
        upstream.on_message(lambda frame: to_page.append(frame) if holding[0] else socket.send(frame))

    page.route_web_socket(re.compile(r"/ws/chat/"), hold_what_the_server_says)
    index = send(page, LONG_REPLY)
    while not creating:
        page.wait_for_timeout(20)
    page.keyboard.press("Escape")  # while the conversation is being created
    creating[0].continue_()
    page.wait_for_function("document.getElementById('chat').dataset.conversationId")
    conversation_id = page.evaluate("document.getElementById('chat').dataset.conversationId")
    stored = "SELECT status FROM voice_message WHERE conversation_id = %s AND role = 'assistant'"
    for _ in range(600):  # until the reply has ended on the server
        rows = server.site.fetch(stored, conversation_id)
        if rows and rows[0][0] != "streaming":
            break
        page.wait_for_timeout(100)
    assert rows == [("cancelled",)]
    # The tab hears it all now, in order, and plays none of it.
    while to_page:
        sockets[0].send(to_page.pop(0))
    holding[0] = False
    reply_id = wait_for_reply(page, index, status="cancelled")
    assert playback(page, reply_id) == [] and page.evaluate(NOTHING_SPEAKS)


# --- Markdown ----------------------------------------------------------------------------
MARKDOWN = """Read **this bold** sentence now. Then a *second* one follows here.

- first item
- second ~~gone~~ item

| Tea | Coffee |
|:----|-------:|
| green | black |

```
<b>not bold</b>
```

See [the docs](https://example.com/docs) or `code`."""


def check_markdown(reply):
    assert reply.locator("strong").text_content() == "this bold"
    assert reply.locator("em").text_content() == "second"
    assert [li.text_content() for li in reply.locator("li").all()] == ["first item", "second gone item"]
    assert reply.locator("s").text_content() == "gone"
    assert [c.text_content() for c in reply.locator("th, td").all()] == ["Tea", "Coffee", "green", "black"]
    assert reply.locator("td").last.evaluate("cell => cell.style.textAlign") == "right"
    assert reply.locator("pre code").text_content() == "<b>not bold</b>\n"
    assert reply.locator("pre b").count() == 0
    link = reply.get_by_role("link", name="the docs")
    assert link.get_attribute("href") == "https://example.com/docs"
    assert link.get_attribute("target") == "_blank" and link.get_attribute("rel") == "noopener noreferrer"
    assert reply.get_by_role("button", name=re.compile(r"^Copy code block 1 of reply \d+$")).count() == 1


def test_a_streamed_markdown_reply_renders_with_the_spoken_sentence_marked(page):
    index = send(page, MARKDOWN)
    # Marked in the rendered reply, across its formatting: the marks together are the sentence.
    marked = page.wait_for_function(
        "() => { const marks = [...document.querySelectorAll('.message--speaking mark')];"
        " const text = marks.map(m => m.textContent).join('');"
        " return text === 'Read this bold sentence now.' && marks.some(m => m.closest('strong')) && text; }"
    )
    assert marked.json_value() == "Read this bold sentence now."
    page.wait_for_function(
        "() => [...document.querySelectorAll('.message--speaking mark')].map(m => m.textContent).join('')"
        " === 'Then a second one follows here.'"
    )
    assert page.locator(".message--speaking em mark").text_content() == "second"
    reply_id = wait_for_reply(page, index)
    reply = page.locator(f'[data-message-id="{reply_id}"]')
    check_markdown(reply)
    page.reload()  # rendered by the server this time
    check_markdown(page.locator(f'[data-message-id="{reply_id}"]'))


XSS = """[x](javascript:window.pwned=1) <img src=x onerror="window.pwned=2"> <script>window.pwned=3</script>
[y](JAVASCRIPT:window.pwned=4) ![z](javascript:window.pwned=5) <svg onload="window.pwned=6"></svg>

<a href="javascript:window.pwned=7">a</a>

```
<img src=x onerror="window.pwned=8">
```

`<iframe src="javascript:window.pwned=9"></iframe>` [ok](https://example.com)"""

INERT = """() => {
  const replies = document.querySelectorAll('.message__text');
  const active = [...replies].flatMap(
    r => [...r.querySelectorAll('img, script, svg:not(.icon), iframe, object, embed, [onerror], [onload]')]);
  const links = [...document.querySelectorAll('.message__text a')];
  return {active: active.length, pwned: window.pwned ?? null,
          links: links.map(a => [a.getAttribute('href'), a.target, a.rel])};
}"""


def test_markup_and_scripts_in_markdown_stay_inert(page):
    reply_id = wait_for_reply(page, send(page, XSS))
    live = page.evaluate(INERT)
    assert live == {"active": 0, "pwned": None, "links": [["https://example.com", "_blank", "noopener noreferrer"]]}
    reply = page.locator(f'[data-message-id="{reply_id}"] .message__text')
    assert "<script>window.pwned=3</script>" in reply.text_content()
    assert reply.locator("pre code").text_content() == '<img src=x onerror="window.pwned=8">\n'
    for link in reply.locator("a").all():
        link.click(modifiers=["Control"])  # no script link anywhere to run
    page.reload()
    assert page.evaluate(INERT) == live
    assert page.locator(".message--user .message__text").last.text_content() == XSS  # the user's is plain text


def test_replies_and_code_can_be_copied(page, context):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    reply_id = wait_for_reply(page, send(page, "Some *text*.\n\n```\nprint('hi')\n```"))
    reply = page.locator(f'[data-message-id="{reply_id}"]')
    reply.get_by_role("button", name="Copy reply 1").click()
    assert page.evaluate("navigator.clipboard.readText()") == "Some *text*.\n\n```\nprint('hi')\n```"
    reply.get_by_role("button", name="Copy code block 1 of reply 1").click()
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')\n"
    page.get_by_role("button", name="Copy your message 1").click()
    assert page.evaluate("navigator.clipboard.readText()").startswith("Some *text*.")


# --- Reading a conversation -------------------------------------------------------------------
def long_conversation(server, title: str, pairs: int = 25) -> str:
    """A conversation of demo's with many messages, made directly; returns its URL."""
    return server.site.shell(
        "from voice.models import Conversation, Message\n"
        "from django.contrib.auth import get_user_model\n"
        f"c = Conversation.objects.create(owner=get_user_model().objects.get(username='demo'), title={title!r})\n"
        f"for n in range({pairs}):\n"
        "    Message.objects.create(conversation=c, role='user', text=f'Question {n}: ' + 'why? ' * 30)\n"
        "    Message.objects.create(conversation=c, role='assistant', text=f'Answer {n}. ' + 'Because. ' * 40)\n"
        "print(c.get_absolute_url())"
    )


AT_END = """() => { const list = document.getElementById('messages');
  return list.scrollHeight - list.scrollTop - list.clientHeight < 50; }"""


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_a_conversation_opens_at_its_newest_message(browser, server, viewport):
    url = long_conversation(server, "Long one")
    context = new_context(browser, viewport or {"width": 1280, "height": 800}, phone=viewport is not None)
    page = context.new_page()
    log_in(page, server, url)
    assert page.evaluate(AT_END)
    assert page.locator(".message").last.is_visible()
    assert page.evaluate("document.getElementById('messages').scrollHeight > 3 * innerHeight")
    context.close()


def test_following_stops_when_reading_up_and_jump_to_latest_returns(page, context, server):
    url = f"{server.url}{long_conversation(server, 'Scrolling')}"
    page.goto(url)
    wait_until_open(page)
    page.locator("#messages").hover()
    page.mouse.wheel(0, -1500)
    jump = page.get_by_role("button", name="Jump to latest")
    jump.wait_for()
    # Another tab asks: the reply comes here too, but the reader is left where they are.
    other = context.new_page()
    other.goto(url)
    index = send(other, THREE_SENTENCES)
    wait_for_reply(page, index)
    assert not page.evaluate(AT_END), "the page scrolled while the reader was reading"
    jump.click()
    page.wait_for_function(AT_END)
    assert jump.is_hidden()
    # Following again: the next reply stays in view as it grows.
    wait_for_reply(page, send(other, f"{THREE_SENTENCES} {THREE_SENTENCES}"))
    page.wait_for_function(AT_END)
    # And sending follows, wherever the reader was.
    page.mouse.wheel(0, -1500)
    jump.wait_for()
    wait_for_reply(page, send(page, THREE_SENTENCES))
    page.wait_for_function(AT_END)


def test_thinking_shows_from_enter_to_the_first_words(page):
    page.evaluate("""() => { window.seen = [];
      const dots = '.message--thinking, .message[data-status=streaming] .message__text:empty';
      new MutationObserver(() => window.seen.push(document.querySelector(dots) ? 'thinking' : 'text'))
        .observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true}); }""")
    wait_for_reply(page, send(page, THREE_SENTENCES))
    seen = page.evaluate("window.seen")
    assert seen[0] == "thinking" and seen[-1] == "text"
    assert "thinking" not in seen[seen.index("text") :], "thinking came back after the first words"
    assert page.locator(".message--thinking").count() == 0


def test_messages_have_times_and_every_button_its_own_name(page):
    wait_for_reply(page, send(page, "One."))
    wait_for_reply(page, send(page, "Two."), status="complete")
    for _ in ("live", "from the server"):
        times = page.locator(".message time").all()
        assert len(times) == 4
        for time in times:
            assert re.fullmatch(r"\d{2}:\d{2}( [AP]M)?", time.text_content()) and time.get_attribute("datetime")
        page.reload()
    names = page.evaluate(
        "[...document.querySelectorAll('button')].filter(b => b.offsetParent)"
        ".map(b => (b.getAttribute('aria-label') || b.textContent).trim())"
    )
    assert all(names) and len(names) == len(set(names)), names
    assert "Play reply 2" in names and "Copy your message 1" in names


def test_a_finished_reply_is_announced_once(page):
    page.evaluate("""() => { window.announced = []; const region = document.getElementById('announcer');
      new MutationObserver(() => region.textContent && window.announced.push(region.textContent))
        .observe(region, {childList: true, characterData: true, subtree: true}); }""")
    wait_for_reply(page, send(page, THREE_SENTENCES))
    page.wait_for_function("window.announced.length > 0")
    page.wait_for_timeout(500)
    assert page.evaluate("window.announced") == [f"Reply: {THREE_SENTENCES}"]
    assert page.locator("#messages").get_attribute("aria-live") is None  # not every word


def test_the_voice_picker_names_each_voice_language(page):
    options = page.get_by_label("Voice").locator("option").all_text_contents()
    assert options[0] == "Default"
    assert all("·" in option and "English" in option for option in options[1:]), options


# --- Conversations: rename, delete, search -------------------------------------------------------
def test_rename_search_and_delete_a_conversation(page):
    wait_for_reply(page, send(page, "Notes about the garden shed."))
    page.get_by_role("button", name="Rename conversation").click()
    name = page.get_by_role("textbox", name="Conversation name")
    name.fill("Garden plans")
    name.press("Enter")
    title = page.get_by_role("heading", level=1)
    assert title.text_content() == "Garden plans"
    assert page.get_by_role("link", name="Garden plans").get_attribute("aria-current") == "page"
    assert page.title().startswith("Garden plans")
    page.reload()
    assert title.text_content() == "Garden plans"
    # Search finds titles and what was said.
    search = page.get_by_role("searchbox", name="Search conversations")
    search.fill("shed")
    page.wait_for_function("document.querySelectorAll('#conversation-list a').length === 1")
    assert page.locator("#conversation-list a").text_content() == "Garden plans"
    search.fill("no such words anywhere")
    page.wait_for_selector("text=No conversation mentions")
    search.fill("")
    page.wait_for_function("document.querySelectorAll('#conversation-list a').length > 1")
    # Delete asks first; Cancel keeps it.
    page.get_by_role("button", name="Delete conversation").click()
    dialog = page.get_by_role("dialog", name="Delete this conversation?")
    dialog.get_by_role("button", name="Cancel").click()
    assert dialog.is_hidden() and title.text_content() == "Garden plans"
    page.get_by_role("button", name="Delete conversation").click()
    dialog.get_by_role("button", name="Delete conversation").click()
    page.wait_for_function("document.getElementById('conversation-title').textContent !== 'Garden plans'")
    assert page.get_by_role("link", name="Garden plans").count() == 0


# --- Text survives ----------------------------------------------------------------------------------
def test_typed_text_survives_a_reload_and_a_server_that_is_down(page, server):
    box(page).fill("A draft I have not sent.")
    page.reload()
    assert box(page).input_value() == "A draft I have not sent."
    server.stop()
    try:
        box(page).press("Enter")  # the new conversation cannot be created
        page.wait_for_selector("#chat-error:not([hidden])")
        assert box(page).input_value() == "A draft I have not sent."
    finally:
        server.start()
    page.get_by_role("button", name="Dismiss the error").click()
    box(page).press("Enter")
    wait_for_reply(page, 0)
    assert box(page).input_value() == ""
    page.reload()
    assert box(page).input_value() == ""  # sent: the draft is gone


# --- Catching up after a dropped connection --------------------------------------------------------
def test_a_reply_cut_by_a_dropped_connection_catches_up_without_a_reload(browser, tmp_path):
    site = Site(tmp_path / "slow", VOICE_RESPONDER="voice.tests.responders.SlowResponder").setup()
    slow = DaphneServer(site).start()
    context = new_context(browser)
    try:
        page = context.new_page()
        log_in(page, slow)
        send(page, "Talk slowly.")
        page.wait_for_selector("text=Sentence number 3.")
        slow.stop()  # mid-reply: the server stores what it had, as interrupted
        page.wait_for_function("document.getElementById('chat').dataset.connection === 'reconnecting'")
        assert page.locator(".message--assistant[data-message-id]").get_attribute("data-status") == "streaming"
        slow.start()
        page.wait_for_selector('.message--assistant[data-status="interrupted"]', timeout=40_000)
        ((stored,),) = site.fetch("SELECT text FROM voice_message WHERE role = 'assistant'")
        assert reply_text(page) == stored.strip() and "Sentence number 3." in stored
    finally:
        context.close()
        slow.stop()
        site.destroy()


def test_a_reply_waiting_for_the_model_shows_its_place(browser, tmp_path):
    site = Site(
        tmp_path / "busy",
        VOICE_RESPONDER="local",
        VOICE_LLM_SEQUENCES="1",
        VOICE_LLM_MAX_TOKENS="80",
        # Once heard, a reply seems to have audio for ever: it keeps the one sequence until stopped.
        VOICE_LLM_WRITE_AHEAD="-3600",
    ).setup()
    busy = DaphneServer(site).start()
    context = new_context(browser)
    try:
        first, second = context.new_page(), context.new_page()
        log_in(first, busy)
        second.goto(f"{busy.url}/c/new/")  # the same user, another conversation
        second.wait_for_function("window.voicePlayer !== undefined")
        send(first, "Tell me a long story about a lighthouse keeper.")
        # Asked while the first reply is being written (its prompt alone takes the model most of a second),
        # not once it is heard: a reply that ends before its first sound would free the sequence first.
        index = send(second, "Tell me about the sky.")
        waiting = second.locator(".message--assistant[data-message-id]").nth(index)
        waiting.locator(".message__status", has_text="Waiting for the model: you are next").wait_for()
        first.wait_for_function("window.voicePlayer.playingMessageId !== null")  # heard, it keeps the sequence
        first.get_by_role("button", name="Stop speech").click()
        # The sequence is free: the waiting reply is written, and no longer shows its place.
        second.wait_for_function(
            "(item) => item.querySelector('.message__text').textContent.trim() !== ''", arg=waiting.element_handle()
        )
        assert "Waiting" not in waiting.locator(".message__status").text_content()
    finally:
        context.close()
        busy.stop()
        site.destroy()


# --- Keyboard only ------------------------------------------------------------------------------------
FOCUS_RING = """() => { const focused = document.activeElement;
  // The message box draws its ring around the whole composer.
  const style = getComputedStyle(focused.id === 'query' ? focused.closest('.composer__box') : focused);
  return style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2; }"""


def test_keyboard_only(page):
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the message box"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "query"
    page.keyboard.type("Typed with the keyboard only.")
    page.keyboard.press("Enter")
    wait_for_reply(page, 0)
    page.wait_for_selector("#stop[hidden]", state="attached")
    # Back from the box: the reply's position slider, then its play button.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Play reply 1"
    assert page.evaluate(FOCUS_RING)
    page.keyboard.press("Enter")
    page.wait_for_function("window.voiceReplay.playing")
    page.keyboard.press("Escape")
    page.wait_for_function("!window.voiceReplay.playing")
    # Every control shows where the focus is: once round the whole page.
    seen = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement === document.body ? null : document.activeElement.outerHTML")
        if focused is None or focused in seen:
            continue
        seen.add(focused)
        assert page.evaluate(FOCUS_RING), focused[:100]
    assert len(seen) > 15


def test_keyboard_opens_and_closes_the_drawer_on_a_phone(browser, server):
    context = new_context(browser, PHONE, phone=True)
    page = context.new_page()
    log_in(page, server)
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Conversations"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "conversation-search"
    assert page.get_by_role("button", name="Conversations", exact=True).get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")
    page.wait_for_selector("#sidebar", state="hidden")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Conversations"
    context.close()


# --- Bounded memory -------------------------------------------------------------------------------------
CAPTURE_SOCKET = """() => { const Native = window.WebSocket;
  window.WebSocket = class extends Native { constructor(...args) { super(...args); window.voiceSocket = this; } }; }"""


def test_logs_and_timers_stay_bounded(page, context):
    # Many tiny chunks through the player: its log keeps the newest, stop clears every timer.
    sizes = page.evaluate("""async () => {
      const player = window.voicePlayer;
      player.unlock();
      const header = {message_id: 999999, format: 'pcm_s16le', sample_rate: 8000, channels: 1};
      for (let seq = 0; seq < 700; seq++) player.enqueue({...header, seq}, new Uint8Array(16));
      await player.pending;
      const during = {log: player.log.length, timers: player.timers.size};
      player.stop();
      return {...during, after: player.timers.size, last: player.log.at(-1).seq};
    }""")
    assert sizes == {"log": 500, "timers": sizes["timers"], "after": 0, "last": 699}
    # Events for many replies: the per-reply record keeps the newest only.
    wait_for_reply(page, send(page, "Hello."))
    page.add_init_script(f"({CAPTURE_SOCKET})()")
    page.reload()
    wait_until_open(page)
    kept = page.evaluate("""() => { for (let id = 1; id <= 300; id++) {
        window.voiceSocket.dispatchEvent(new MessageEvent('message', {data: JSON.stringify(
          {type: 'reply.done', message_id: 100000 + id, status: 'complete', metrics: {}})}));
      } return Object.keys(window.voiceReplies).map(Number); }""")
    assert len(kept) == 100 and min(kept) == 100201


# --- Admin --------------------------------------------------------------------------------------------------
def test_the_admin_transcript_is_readable_and_its_players_seek(page):
    reply_id = wait_for_reply(page, send(page, f"{THREE_SENTENCES} {MARKDOWN}"))
    conversation = page.url.rstrip("/").rsplit("/", 1)[1]
    base = page.url.split("/c/")[0]
    page.goto(f"{base}/admin/voice/conversation/{conversation}/change/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.evaluate("document.documentElement.scrollHeight") < 2400
    reply = page.locator(".transcript-admin__entry--assistant")
    assert reply.locator(".markdown strong").first.text_content() == "this bold"
    width = reply.locator(".transcript-admin__text").bounding_box()["width"]
    assert width > 600, "the text column is too narrow to read"
    audio = reply.locator("audio")
    assert audio.get_attribute("src") == f"/messages/{reply_id}/audio/"
    with page.expect_response(lambda response: "/audio/" in response.url and response.status == 206):
        audio.evaluate("player => player.play()")
    audio.evaluate("player => { player.currentTime = 3; }")
    page.wait_for_function(
        "player => player.seekable.length && player.seekable.end(0) > 5 && player.currentTime >= 3",
        arg=audio.element_handle(),
    )
