"""Assistant replies as safe HTML: markdown-it-py, then nh3's allow-list.

The page renders the same markdown live in the browser (static/voice/markdown.js,
with marked): CommonMark plus GFM tables and strikethrough, raw HTML shown as
text, links only to http(s) and mailto, opening in a new tab, images as their
alt text (a model's image URL would be fetched by every reader), headings two
levels down (the page has its own h1 and h2). Both sides must keep to that.
"""

from __future__ import annotations

import re

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

SAFE_LINK = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)
HEADING_OFFSET = 2

TAGS = {
    "p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "hr", "a",
    "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td",
    "h3", "h4", "h5", "h6",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}, "code": {"class"}}


def _render_image_as_text(renderer, tokens: list[Token], idx: int, options, env) -> str:
    return renderer.renderInline(tokens[idx].children or [], options, env)


def _lower_headings(state) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + HEADING_OFFSET, 6)}"


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: bool(SAFE_LINK.match(url.strip()))
    md.add_render_rule("image", _render_image_as_text)
    md.core.ruler.push("lower_headings", _lower_headings)
    return md


_markdown = _parser()


def render_markdown(text: str) -> SafeString:
    """``text`` (markdown from a model) as HTML that is safe to put in a page."""
    html = _markdown.render(text)
    # The sanitizer is the guarantee; the parser settings above only make its job small.
    cleaned = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties={"text-align"},
    )
    # Without the newlines between tags, the text is the same as the page's own rendering.
    return mark_safe(cleaned.replace(">\n<", "><").strip())  # cleaned by nh3 just above
