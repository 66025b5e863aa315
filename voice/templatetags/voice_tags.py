"""Template helpers of the chat page and the admin transcript."""

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..rendering import render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """A reply's markdown as sanitized HTML (voice.rendering)."""
    return render_markdown(text or "")


@register.filter
def seconds(ms: int | None) -> str:
    """Milliseconds as "2.3 s"; "" for none."""
    if ms is None:
        return ""
    return f"{ms / 1000:.1f} s"


@register.filter
def clock(ms: int | None) -> str:
    """Milliseconds as a player's clock, "1:07" (the page's formatClock)."""
    whole = int((ms or 0) // 1000)
    return f"{whole // 60}:{whole % 60:02d}"


@register.simple_tag
def icon(name: str) -> SafeString:
    """An icon from the page's sprite (templates/voice/icons.svg); decorative, so hidden from screen readers."""
    return format_html('<svg class="icon" aria-hidden="true" focusable="false"><use href="#icon-{}"></use></svg>', name)
