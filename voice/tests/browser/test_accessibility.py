"""The chat page checked by axe-core (vendored as a test asset) in Chromium, in both themes."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice.tests import pages
from voice.tests.pages import DESKTOP, PHONE, log_in, new_context, send, wait_for_reply, watch_errors

pytestmark = pytest.mark.browser
server, browser = pages.server, pages.browser  # one Daphne and one Chromium for the module

AXE = Path(__file__).parent / "assets" / "axe.min.js"
A_REPLY = "A reply with **bold**, a [link](https://example.com) and code:\n\n```\nx = 1\n```\n\n- one\n- two"


def violations(page) -> list[str]:
    """Serious and critical axe violations of the page as it is now (WCAG 2.x A and AA, and best practice)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice']}))"
        ".violations.filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)"
    )
    return found


@pytest.fixture(scope="module")
def conversation_url(browser, server):
    """A conversation with a markdown reply and its player, made once for every check."""
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server)
    wait_for_reply(page, send(page, A_REPLY))
    url = page.url
    context.close()
    return url


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_serious_violations(browser, server, conversation_url, scheme, viewport):
    context = new_context(browser, viewport, color_scheme=scheme, phone=viewport is PHONE)
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, server, conversation_url.removeprefix(server.url))
    assert violations(page) == []
    if viewport is PHONE:
        page.get_by_role("button", name="Conversations", exact=True).click()
        page.get_by_role("searchbox", name="Search conversations").wait_for()
        assert violations(page) == []
    else:
        page.get_by_role("button", name="Delete conversation").click()
        assert violations(page) == []
    assert errors == []
    context.close()


def test_the_login_page_has_no_serious_violations(browser, server):
    context = new_context(browser, color_scheme="dark")
    page = context.new_page()
    page.goto(f"{server.url}/accounts/login/")
    assert violations(page) == []
    context.close()


def test_the_dark_theme_follows_the_system(browser, server, conversation_url):
    colours = {}
    for scheme in ("light", "dark"):
        context = new_context(browser, color_scheme=scheme)
        page = context.new_page()
        log_in(page, server, conversation_url.removeprefix(server.url))
        colours[scheme] = page.evaluate(
            "() => ['html', '.message--assistant .message__bubble', '#query'].map("
            "s => { const style = getComputedStyle(document.querySelector(s));"
            " return [style.backgroundColor, style.color]; })"
        )
        context.close()

    def luminance(rgb: str) -> float:
        red, green, blue = (int(part) for part in rgb.removeprefix("rgb(").rstrip(")").split(",")[:3])
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    assert luminance(colours["light"][0][0]) > 200 and luminance(colours["dark"][0][0]) < 40
    assert luminance(colours["dark"][1][0]) < 60 and luminance(colours["dark"][1][1]) > 180
    assert luminance(colours["dark"][2][1]) > 180  # typed text is light on dark
