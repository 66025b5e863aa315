"""The chat page at its limits, in headless Chromium against a live Daphne: over-long queries, Stop while the
conversation is being made, search typed quickly, long conversations loaded a page at a time."""

from __future__ import annotations

import pytest

from voice.tests import pages
from voice.tests.pages import (
    LONG_REPLY,
    box,
    playback,
    send,
    wait_for_reply,
    wait_until_open,
)

pytestmark = pytest.mark.browser
# One Daphne and one Chromium for the module; a fresh logged-in page per test.
server, browser, context, page = pages.server, pages.browser, pages.context, pages.page


def send_by_script(page, length: int) -> None:
    """What a paste past the box's limit, or a script of the page, does: the box holds it, Enter sends it."""
    page.evaluate(
        """length => { const input = document.getElementById('query');
          input.removeAttribute('maxlength'); input.value = 'y'.repeat(length); }""",
        length,
    )
    box(page).press("Enter")


def stored_user_messages(server) -> int:
    ((count,),) = server.site.fetch("SELECT COUNT(*) FROM voice_message WHERE role = 'user'")
    return count


# --- Over-long queries -----------------------------------------------------------------------
def test_a_pasted_text_past_the_limit_is_kept_whole_and_the_person_told_at_once(page, server):
    wait_for_reply(page, send(page, "Hello."))
    before = stored_user_messages(server)
    box(page).focus()
    page.keyboard.insert_text("z" * 2050)  # as a paste does: into the box, no key pressed
    page.wait_for_selector("#chat-error:not([hidden])")
    assert "the limit is 2000" in page.locator("#chat-error-text").text_content()
    assert box(page).input_value() == "z" * 2050  # nothing cut off
    box(page).press("Enter")
    assert "Not sent" in page.locator("#chat-error-text").text_content()
    # Shortened under the limit, the error goes, and it is sent.
    box(page).fill("Short again.")
    page.wait_for_selector("#chat-error", state="hidden")
    wait_for_reply(page, send(page, "Short again."))
    assert stored_user_messages(server) == before + 1


@pytest.mark.parametrize(
    "length, conversation",
    # Just over VOICE_MAX_QUERY_CHARS in a conversation; over Daphne's 1 MiB frame cap as a first query.
    [(2001, "existing"), (1_100_000, "new")],
    ids=["just-over", "over-the-frame-cap"],
)
def test_an_over_long_query_stays_in_the_box_with_the_error(page, server, length, conversation):
    if conversation == "existing":
        wait_for_reply(page, send(page, "Hello."))
    url = page.url
    before = stored_user_messages(server)
    send_by_script(page, length)
    page.wait_for_selector("#chat-error:not([hidden])")
    assert "the limit is 2000" in page.locator("#chat-error-text").text_content()
    page.wait_for_timeout(1000)  # whatever would come back from the server has come
    assert len(box(page).input_value()) == length
    # Nothing is shown as sent or waiting, nothing was stored, and the page is still connected.
    assert page.locator(".message--user").count() == (1 if conversation == "existing" else 0)
    assert stored_user_messages(server) == before
    assert page.url == url  # no conversation made for it
    assert page.locator("#connection-status").text_content() == ""


# --- Stop while the conversation is being made --------------------------------------------------
def test_escape_while_the_conversation_is_being_created_cancels_the_reply(page, server):
    """The first query of a new conversation waits for its conversation (POST /c/), then for the socket: an Escape
    pressed meanwhile still stops its reply, once there is a socket to say so on."""
    held = []
    page.route(f"{server.url}/c/", lambda route: held.append(route))
    box(page).fill(LONG_REPLY)
    box(page).press("Enter")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held and held[0].request.method == "POST"
    page.keyboard.press("Escape")
    held[0].continue_()
    reply_id = wait_for_reply(page, 0, status="cancelled")
    ((status,),) = server.site.fetch("SELECT status FROM voice_message WHERE id = %s", reply_id)
    assert status == "cancelled"
    page.wait_for_timeout(1000)
    assert playback(page, reply_id) == [] and page.evaluate("window.voicePlayer.playing") is False


# --- Search ----------------------------------------------------------------------------------
def test_typing_a_word_sends_one_search(page, server):
    searches = []
    page.on("request", lambda request: "/c/list/" in request.url and searches.append(request.url))
    search = page.get_by_role("searchbox", name="Search conversations")
    search.press_sequentially("weather", delay=120)  # a quick typist
    page.wait_for_timeout(1000)
    assert searches == [f"{server.url}/c/list/?q=weather"]
    search.press("Enter")  # nothing new to ask
    page.wait_for_timeout(500)
    assert len(searches) == 1
    search.press_sequentially(" today", delay=120)
    page.wait_for_timeout(1000)
    assert searches[1:] == [f"{server.url}/c/list/?q=weather+today"]


def test_a_search_the_server_refuses_says_why(page):
    # The box stops at the limit; a script can get past it.
    page.evaluate(
        """() => { const search = document.getElementById('conversation-search');
          search.removeAttribute('maxlength'); search.value = 'w'.repeat(101);
          search.dispatchEvent(new Event('input')); }"""
    )
    page.wait_for_selector("#chat-error:not([hidden])")
    assert page.locator("#chat-error-text").text_content() == "Search failed: Search for at most 100 characters."


# --- Long conversations ---------------------------------------------------------------------
def conversation_of(server, pairs: int) -> str:
    """A conversation of demo's with ``pairs`` questions and answers, made directly; returns its URL."""
    return server.site.shell(
        "from voice.models import Conversation, Message\n"
        "from django.contrib.auth import get_user_model\n"
        "c = Conversation.objects.create(owner=get_user_model().objects.get(username='demo'), title='Long')\n"
        f"for n in range({pairs}):\n"
        "    Message.objects.create(conversation=c, role='user', text=f'Question {n}: ' + 'why? ' * 10)\n"
        "    Message.objects.create(conversation=c, role='assistant', text=f'**Answer {n}**. ' + 'Because. ' * 20)\n"
        "print(c.get_absolute_url())"
    )


SHOWN = "document.querySelectorAll('#messages .message[data-message-id]').length"


def test_a_long_conversation_loads_older_messages_as_the_reader_scrolls_up(page, server):
    page.goto(f"{server.url}{conversation_of(server, 60)}")
    wait_until_open(page)
    assert page.evaluate(SHOWN) == 50
    messages = page.locator("#messages .message[data-message-id]")
    assert messages.first.locator(".message__text").text_content().startswith("Question 35:")
    # Numbered over the whole conversation, not the page.
    assert page.get_by_role("button", name="Copy reply 60").count() == 1
    assert page.get_by_role("button", name="Copy your message 36").count() == 1
    first_id = messages.first.get_attribute("data-message-id")
    where = f"document.querySelector('[data-message-id=\"{first_id}\"]').getBoundingClientRect().top"

    # To the top: the previous page comes, and what the reader was looking at stays where it was.
    at_top = page.evaluate(f"() => {{ document.getElementById('messages').scrollTop = 0; return {where}; }}")
    page.wait_for_function(f"{SHOWN} === 100")
    page.wait_for_timeout(300)
    assert page.evaluate(where) == pytest.approx(at_top, abs=2), "the view jumped to the newly loaded messages"
    assert page.evaluate("document.getElementById('messages').scrollTop") > 1000
    # Rendered like live messages: markdown through the page's renderer, times, copy buttons.
    earlier = page.locator(".message--assistant[data-message-id]").first
    assert earlier.locator(".message__text strong").text_content() == "Answer 10"
    assert earlier.locator("time").get_attribute("datetime")
    assert page.get_by_role("button", name="Copy reply 11").count() == 1

    # Again: the rest, and then nothing more to load.
    page.locator("#messages").evaluate("list => list.scrollTop = 0")
    page.wait_for_function(f"{SHOWN} === 120")
    assert messages.first.locator(".message__text").text_content().startswith("Question 0:")
    page.wait_for_selector("#messages-earlier", state="detached")
    names = page.locator(".message__copy").evaluate_all("buttons => buttons.map(b => b.getAttribute('aria-label'))")
    assert len(names) == len(set(names)) == 120
    assert "Copy your message 1" in names and "Copy reply 60" in names
    ids = page.locator("#messages .message[data-message-id]").evaluate_all(
        "items => items.map(item => Number(item.dataset.messageId))"
    )
    assert ids == sorted(ids) and len(set(ids)) == 120

    # A new exchange is numbered after the whole conversation too.
    wait_for_reply(page, send(page, "One more."))
    assert page.get_by_role("button", name="Copy your message 61").count() == 1
    assert page.get_by_role("button", name="Copy reply 61").count() == 1


def test_earlier_messages_load_from_the_keyboard(page, server):
    page.goto(f"{server.url}{conversation_of(server, 30)}")
    wait_until_open(page)
    assert page.evaluate(SHOWN) == 50
    button = page.get_by_role("button", name="Show earlier messages")
    button.evaluate("button => button.focus({preventScroll: true})")  # not scrolled to: the button alone loads
    page.keyboard.press("Enter")
    page.wait_for_function(f"{SHOWN} === 60")
    page.wait_for_selector("#messages-earlier", state="detached")
    # The button is gone; focus is not lost to the page.
    assert page.evaluate("document.activeElement.id") == "messages"
