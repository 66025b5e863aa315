"""The fast tier: no Redis, no PostgreSQL of its own, no browser, no model, no server process.

``make test-fast`` runs this folder alone, for the inner loop. The guard below
makes the rule one that fails: a test here that reaches for Redis, for a
PostgreSQL that is not the pass's test database, for a real engine (Piper,
Whisper, llama.cpp: their packages may not even be imported) or for a
browser or a server process fails with the reason. Such a test belongs in
models/, services/ or browser/.
"""

import importlib.abc
import socket
import sys
from contextlib import contextmanager

import pytest
from django.db import connection

# Importing any of these means a real engine or a browser: the fast tier has fakes for each.
FORBIDDEN_PACKAGES = {
    "piper": "Piper (a model)",
    "onnxruntime": "Piper's runtime (a model)",
    "faster_whisper": "Whisper (a model)",
    "ctranslate2": "Whisper's runtime (a model)",
    "llama_cpp": "llama.cpp (a model)",
    "playwright": "a browser",
}
SERVICE_PORTS = {6379: "Redis", 5432: "PostgreSQL"}


class ForbiddenTier(Exception):
    """What a fast test did that only a slower tier may do."""


class RefuseImports(importlib.abc.MetaPathFinder):
    def __init__(self, packages: dict[str, str]) -> None:
        self.packages = packages

    def find_spec(self, name, path=None, target=None):
        what = self.packages.get(name.partition(".")[0])
        if what:
            raise ForbiddenTier(f"A fast test imported {name}: {what}. Move the test to models/ or browser/.")
        return None


def refused_imports() -> RefuseImports:
    packages = dict(FORBIDDEN_PACKAGES)
    if connection.vendor != "postgresql":
        # On SQLite nothing of ours needs a PostgreSQL driver; on PostgreSQL the test database is allowed.
        packages["psycopg"] = packages["psycopg2"] = "a PostgreSQL driver"
    # A package a slower test imported earlier in this process cannot be caught here; `make test-fast`
    # (this folder alone) imports none of them.
    return RefuseImports({name: what for name, what in packages.items() if name not in sys.modules})


@contextmanager
def refusing_imports():
    finder = refused_imports()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Importing a test module of this folder imports no model either."""
    if not isinstance(collector, pytest.Module):
        return (yield)
    with refusing_imports():
        return (yield)


@pytest.fixture(scope="module", autouse=True)
def only_fast_things():
    """Fail a test that imports a model or a browser, connects to Redis or PostgreSQL, or starts a server.

    Module-scoped, so that it also holds for the module-scoped fixtures that load what a module shares.
    """
    real_connect = socket.socket.connect
    ports = dict(SERVICE_PORTS)
    if connection.vendor == "postgresql":
        del ports[5432]

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[1] in ports:
            service = ports[address[1]]
            raise ForbiddenTier(f"A fast test connected to {service} (port {address[1]}): move it to services/.")
        return real_connect(self, address)

    def no_process(self, *args, **kwargs):
        raise ForbiddenTier(f"A fast test started {type(self).__name__}: move it to services/.")

    from voice.tests import servers

    with refusing_imports(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(servers.Process, "start", no_process)
        yield
