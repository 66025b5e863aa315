"""voice.rendering: a model's markdown as safe HTML."""

from html.parser import HTMLParser

import pytest

from voice.rendering import TAGS, render_markdown

ALLOWED_TAGS = TAGS - {"img", "script", "iframe", "style"}


def parsed(html: str) -> list[tuple[str, dict]]:
    """Every element of ``html`` as the browser would see it: (tag, attributes)."""
    elements = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            elements.append((tag, dict(attrs)))

    Collector().feed(html)
    return elements


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("Hello **bold** and *em* and ~~gone~~", "<p>Hello <strong>bold</strong> and <em>em</em> and <s>gone</s></p>"),
        ("- one\n- two", "<ul><li>one</li><li>two</li></ul>"),
        ("3. three\n4. four", '<ol start="3"><li>three</li><li>four</li></ol>'),
        ("```py\nx = 1\n```", '<pre><code class="language-py">x = 1\n</code></pre>'),
        ("| a | b |\n|:-|-:|\n| 1 | 2 |", '<th style="text-align:left">a</th>'),
        ("# Title", "<h3>Title</h3>"),
        ("#### Deep", "<h6>Deep</h6>"),
        ("a `<b>` c", "<p>a <code>&lt;b&gt;</code> c</p>"),
        (
            "[site](https://example.com)",
            '<p><a href="https://example.com" target="_blank" rel="noopener noreferrer">site</a></p>',
        ),
        ("<mailto:a@example.com>", '<a href="mailto:a@example.com" target="_blank" rel="noopener noreferrer">'),
    ],
)
def test_markdown_features(markdown, html):
    assert html in render_markdown(markdown)


@pytest.mark.parametrize(
    "attack",
    [
        "[x](javascript:alert(1))",
        "[x](JavaScript:alert(1))",
        "[x]( javascript:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox)",
        "<javascript:alert(1)>",
        '<img src=x onerror="alert(1)">',
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        "```\n<script>alert(1)</script>\n```",
        '![x" onerror="alert(1)](http://example.com/a.png)',
        "[x](https://example.com \"t\" onclick='alert(1)')",
    ],
)
def test_nothing_active_survives(attack):
    elements = parsed(render_markdown(attack))
    assert {tag for tag, _attrs in elements} <= ALLOWED_TAGS
    for _tag, attrs in elements:
        assert not [name for name in attrs if name.startswith("on")]
        href = attrs.get("href")
        assert href is None or href.startswith(("http://", "https://", "mailto:"))


def test_relative_links_are_text():
    # Only http(s) and mailto: a relative link would lead inside this site.
    assert "<a" not in render_markdown("[admin](/admin/)")


def test_images_are_their_alt_text():
    assert render_markdown("![a *cat*](https://example.com/cat.png)") == "<p>a <em>cat</em></p>"
