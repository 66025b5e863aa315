"""docs/architecture.md stays true: the modules it names exist, and the import rules it states hold."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def named_paths() -> list[str]:
    """Every path in backquotes on the page (`voice/turns.py`, `voice/tts/`, `static/voice/wire.js`)."""
    return sorted(set(re.findall(r"`((?:voice|static|docs)/[\w./-]+)`", ARCHITECTURE.read_text())))


def test_the_page_names_the_turns_owner_and_its_adapters():
    assert {"voice/turns.py", "voice/consumers.py", "voice/workers.py", "voice/protocol.py"} <= set(named_paths())


@pytest.mark.parametrize("path", named_paths())
def test_every_module_the_page_names_exists(path):
    assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist: update the page"


def imports_of_voice() -> dict[str, set[str]]:
    """Module → the voice modules it imports anywhere in it (functions and TYPE_CHECKING blocks too)."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "voice").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if {"tests", "migrations", "management"} & set(parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                found |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = found
    return {name: {dep for dep in deps if dep in graph and dep != name} for name, deps in graph.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or round about (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for dep in graph[module]:
            if dep not in index:
                visit(dep)
                low[module] = min(low[module], low[dep])
            elif dep in stack:
                low[module] = min(low[module], index[dep])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_module_of_the_app_imports_another_that_imports_it_back():
    assert circles(imports_of_voice()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("module", "must_not_import"),
    [
        ("voice.pool", ("voice.tts", "voice.stt")),
        ("voice.producers", ("voice.replies", "voice.turns")),
        ("voice.dispatch", ("voice.turns", "voice.consumers")),
        ("voice.replies", ("voice.turns", "voice.dispatch", "voice.consumers")),
        ("voice.protocol", ("voice.consumers", "voice.turns", "voice.replies")),
    ],
)
def test_nothing_imports_back_up(module, must_not_import):
    imported = imports_of_voice()[module]
    assert not {dep for dep in imported if dep.startswith(must_not_import)}
