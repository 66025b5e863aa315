"""What a setting names: one plugin instance per name, one service per process.

Engines, transcribers and responders are named by a setting (a short name or
a dotted path) and live once per process, so a loaded model is shared. The
synthesis and transcription services start on first use and are rebuilt when
their settings change (tests override them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

T = TypeVar("T")


class Plugins(Generic[T]):
    """The instances of one kind of plugin, one per name.

    A name is a key of ``known`` or the dotted path of a ``base`` subclass;
    anything else raises ``unavailable`` with a sentence naming the choices.
    """

    def __init__(self, kind: str, known: dict[str, str], base: type[T], unavailable: type[Exception]) -> None:
        self.kind = kind
        self.known = known
        self.base = base
        self.unavailable = unavailable
        self.instances: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> T:
        with self._lock:
            if name not in self.instances:
                self.instances[name] = self._load(name)()
            return self.instances[name]

    def _load(self, name: str) -> type[T]:
        path = self.known.get(name, name)
        try:
            plugin_class = import_string(path)
        except ImportError as exc:
            choices = ", ".join(self.known)
            raise self.unavailable(f"Unknown {self.kind} {name!r}: use one of {choices} or a dotted path.") from exc
        if not (isinstance(plugin_class, type) and issubclass(plugin_class, self.base)):
            raise self.unavailable(f"{path} is not a {self.base.__name__} subclass.")
        return plugin_class


class Service(Protocol):
    def start(self) -> Service: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=Service)


class ProcessService(Generic[S]):
    """Calling it returns the process's one ``factory()`` service, started on first use.

    A change to a setting whose name starts with one of ``settings_prefixes``
    closes it; the next call builds it again from the new settings.
    """

    def __init__(self, factory: Callable[[], S], settings_prefixes: tuple[str, ...]) -> None:
        self.factory = factory
        self.settings_prefixes = settings_prefixes
        self._service: S | None = None
        self._lock = threading.Lock()
        setting_changed.connect(self.reset, weak=False)

    def __call__(self) -> S:
        with self._lock:
            if self._service is None:
                self._service = self.factory().start()
            return self._service

    def reset(self, setting: str = "", **kwargs) -> None:
        """Close the service (if ``setting`` is one of ours, or none is given)."""
        if setting and not setting.startswith(self.settings_prefixes):
            return
        with self._lock:
            if self._service is not None:
                self._service.close()
                self._service = None
