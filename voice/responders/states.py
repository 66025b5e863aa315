"""Conversations' model memory kept aside while their slot serves another conversation.

The local model has VOICE_LLM_SEQUENCES slots; a server has more
conversations than that. When a slot is taken, the memory of the conversation
it held (llama.cpp's ``llama_state_seq_get_data``: its keys and values, about
23 KB a token for SmolLM2-135M) is saved here with the tokens it stands for,
and restored into a slot (``llama_state_seq_set_data``) when that conversation
speaks again: copying megabytes costs milliseconds, reading the history again
costs seconds. The store is bounded in bytes (VOICE_LLM_STATE_MB); the least
recently saved state goes first. A state is taken out when it is restored, so a
conversation is in a slot or here, never both.

Behind it, ``StateFiles`` keeps states on disk (VOICE_LLM_STATE_DISK_MB): what
the memory store evicts, and, when the engine closes (a restart), every
memory it holds. A process reads the files' tokens when it starts, so the
conversations of a restarted server resume without reading their history
again (so do those of the workers that wrote there before it started; files
written later by another process are not seen, and each process bounds its
own).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from .reuse import Reuse

logger = logging.getLogger(__name__)

Plan = Callable[[Sequence[int], Sequence[int]], Reuse]
# A ".part" file this old is a write that never finished, not one another process is making.
STALE_PART_SECONDS = 600
K = TypeVar("K")


@dataclass(eq=False)
class SavedState:
    tokens: list[int]
    data: bytes | bytearray | memoryview
    positions: list[int]  # of each token in the sequence (``batching.Slot.positions``)

    @property
    def size(self) -> int:
        return len(self.data)


class SavedStates:
    """A bounded, least-recently-used store of sequence states (the engine's thread only: no lock)."""

    def __init__(self, limit_bytes: int, files: StateFiles | None = None) -> None:
        self.limit_bytes = max(0, limit_bytes)
        self.used_bytes = 0
        self._states: OrderedDict[int, SavedState] = OrderedDict()
        self._keys = iter(range(1 << 62))
        self.evicted = 0
        self.files = files  # where evicted states go, if anywhere

    def __len__(self) -> int:
        return len(self._states)

    def fits(self, size: int) -> bool:
        return 0 < size <= self.limit_bytes or (self.files is not None and self.files.fits(size))

    def put(self, state: SavedState) -> None:
        """Keep ``state``, evicting the oldest as needed; one larger than the whole store is not kept."""
        if not 0 < state.size <= self.limit_bytes:
            if self.files is not None:
                self.files.put(state)
            return
        while self._states and self.used_bytes + state.size > self.limit_bytes:
            _key, old = self._states.popitem(last=False)
            self.used_bytes -= old.size
            self.evicted += 1
            if self.files is not None:
                self.files.put(old)
        self._states[next(self._keys)] = state
        self.used_bytes += state.size

    def take_best(self, prompt: Sequence[int], plan: Plan, at_least: int) -> tuple[SavedState, Reuse] | None:
        """Remove and return the state that gives ``prompt`` the most tokens (more than ``at_least``), with how.

        One on disk is taken only when it gives more than every one in memory.
        """
        found = _best(((key, state.tokens) for key, state in self._states.items()), prompt, plan, at_least)
        if self.files is not None:
            on_disk = self.files.take_best(prompt, plan, found[1].tokens if found else at_least)
            if on_disk is not None:
                return on_disk
        if found is None:
            return None
        key, reuse = found
        state = self._states.pop(key)
        self.used_bytes -= state.size
        return state, reuse

    def keep_on_disk(self, leaving: Iterable[SavedState]) -> None:
        """The engine closes: write ``leaving`` (its slots' memories) and every state held here to disk."""
        if self.files is not None:
            for state in [*self._states.values(), *leaving]:  # the most recently used last: the last evicted
                self.files.put(state)
        self.clear()

    def clear(self) -> None:
        self._states.clear()
        self.used_bytes = 0


class StateFiles:
    """Saved states as files in one directory, bounded in bytes; the oldest file goes first.

    Each file holds its tokens and their positions, then llama.cpp's bytes. The tokens of every file are
    read when the store opens; a state's bytes only when it is taken, which removes its file. Several
    processes may share the directory: a file another process took first is skipped. Failures (a full
    disk, a damaged file) are logged once and lose only that state: its history is read again.
    """

    SUFFIX = ".state"
    MAGIC = b"voice-llm-state-1\n"

    def __init__(self, directory: Path, limit_bytes: int) -> None:
        self.directory = Path(directory)
        self.limit_bytes = max(0, limit_bytes)
        self.used_bytes = 0
        self.written = 0
        self.failures = 0
        self._warned = False
        # file name -> (tokens, positions, size), oldest first
        self._index: OrderedDict[str, tuple[list[int], list[int], int]] = OrderedDict()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            found = list(self.directory.iterdir())
        except OSError as exc:
            self._failed("open", exc)
            found = []
        paths = []
        for path in found:
            try:
                changed = path.stat().st_mtime
            except OSError:
                continue  # taken or evicted by another process meanwhile
            if path.suffix == self.SUFFIX:
                paths.append((changed, path))
            elif path.suffix == ".part" and time.time() - changed > STALE_PART_SECONDS:
                _remove(path)  # a write cut short (the process was killed while saving)
        for _changed, path in sorted(paths):
            try:
                with path.open("rb") as file:
                    tokens, positions = self._read_header(file)
                    size = path.stat().st_size - file.tell()
            except (OSError, ValueError) as exc:
                self._failed("read", exc)
                _remove(path)
                continue
            self._index[path.name] = (tokens, positions, size)
            self.used_bytes += size
        self._evict(0)

    def __len__(self) -> int:
        return len(self._index)

    def fits(self, size: int) -> bool:
        return 0 < size <= self.limit_bytes

    def put(self, state: SavedState) -> None:
        if not self.fits(state.size):
            return
        self._evict(state.size)
        name = uuid.uuid4().hex + self.SUFFIX
        path = self.directory / name
        part = path.with_suffix(".part")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)  # it may have been removed meanwhile
            with part.open("wb") as file:
                file.write(self.MAGIC + struct.pack("<I", len(state.tokens)))
                file.write(array("i", state.tokens).tobytes() + array("i", state.positions).tobytes())
                file.write(state.data)
            os.replace(part, path)
        except OSError as exc:
            _remove(part)
            self._failed("write", exc)
            return
        self._index[name] = (list(state.tokens), list(state.positions), state.size)
        self.used_bytes += state.size
        self.written += 1

    def take_best(self, prompt: Sequence[int], plan: Plan, at_least: int) -> tuple[SavedState, Reuse] | None:
        while found := _best(((name, held[0]) for name, held in self._index.items()), prompt, plan, at_least):
            name, reuse = found
            tokens, positions, size = self._index.pop(name)
            self.used_bytes -= size
            path = self.directory / name
            try:
                with path.open("rb") as file:
                    self._read_header(file)
                    data = file.read()
                _remove(path)
            except FileNotFoundError:
                continue  # another process took it
            except (OSError, ValueError) as exc:
                self._failed("read", exc)
                _remove(path)
                continue
            if len(data) != size:
                continue
            return SavedState(tokens, data, positions), reuse
        return None

    def _evict(self, room: int) -> None:
        while self._index and self.used_bytes + room > self.limit_bytes:
            name, (_t, _p, size) = self._index.popitem(last=False)
            self.used_bytes -= size
            _remove(self.directory / name)

    def _read_header(self, file: BinaryIO) -> tuple[list[int], list[int]]:
        """The tokens and positions at the start of ``file``, which is left at the state's bytes."""
        if file.read(len(self.MAGIC)) != self.MAGIC:
            raise ValueError("not a saved state")
        tokens, positions = array("i"), array("i")
        try:
            (count,) = struct.unpack("<I", file.read(4))
            tokens.fromfile(file, count)
            positions.fromfile(file, count)
        except (struct.error, EOFError) as exc:
            raise ValueError("a saved state cut short") from exc
        return tokens.tolist(), positions.tolist()

    def _failed(self, doing: str, exc: BaseException) -> None:
        self.failures += 1
        if not self._warned:
            self._warned = True
            logger.warning("Saved conversation memory on disk: could not %s (%s); it is read again.", doing, exc)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):  # gone already, or not ours to remove: either way not a state to use
        path.unlink()


def _best(held: Iterable[tuple[K, Sequence[int]]], prompt: Sequence[int], plan: Plan, at_least: int):
    """``(key, reuse)`` of the tokens that keep the most of ``prompt``, more than ``at_least``; or None."""
    best: tuple[K, Reuse] | None = None
    for key, tokens in held:
        reuse = plan(tokens, prompt)
        if reuse.tokens > at_least and (best is None or reuse.tokens > best[1].tokens):
            best = key, reuse
    return best


def state_files(parent: str | Path, weights_path: str | Path, limit_bytes: int, llama_version: str) -> StateFiles:
    """The store for this model's states, in a folder of ``parent`` named for its weights and llama.cpp.

    A state fits only the model and the llama.cpp that wrote it: the folders of others (an upgrade, a
    changed model) are removed, so the disk holds one bounded store.
    """
    parent = Path(parent)
    name = f"{Path(weights_path).stem}-{os.path.getsize(weights_path)}-llama-{llama_version}"
    if parent.is_dir():
        for other in parent.iterdir():
            if other.is_dir() and other.name != name:
                shutil.rmtree(other, ignore_errors=True)
    return StateFiles(parent / name, limit_bytes)
