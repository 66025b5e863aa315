"""Markdown tables for the benchmark report."""

from __future__ import annotations


def table(headers: list[str], rows: list[list]) -> str:
    cells = [headers, *[[_fmt(c) for c in row] for row in rows]]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join(" --- " for _ in headers) + "|")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)
