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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .reuse import Reuse


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

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = max(0, limit_bytes)
        self.used_bytes = 0
        self._states: OrderedDict[int, SavedState] = OrderedDict()
        self._keys = iter(range(1 << 62))
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._states)

    def fits(self, size: int) -> bool:
        return 0 < size <= self.limit_bytes

    def put(self, state: SavedState) -> None:
        """Keep ``state``, evicting the oldest as needed; one larger than the whole store is not kept."""
        if not self.fits(state.size):
            return
        while self._states and self.used_bytes + state.size > self.limit_bytes:
            _key, old = self._states.popitem(last=False)
            self.used_bytes -= old.size
            self.evicted += 1
        self._states[next(self._keys)] = state
        self.used_bytes += state.size

    def take_best(
        self, prompt: Sequence[int], plan: Callable[[Sequence[int], Sequence[int]], Reuse], at_least: int
    ) -> tuple[SavedState, Reuse] | None:
        """Remove and return the state that gives ``prompt`` the most tokens (more than ``at_least``), with how."""
        best_key, best = None, None
        for key, state in self._states.items():
            reuse = plan(state.tokens, prompt)
            if reuse.tokens > at_least:
                if best is None or reuse.tokens > best[1].tokens:
                    best_key, best = key, (state, reuse)
        if best_key is not None:
            del self._states[best_key]
            self.used_bytes -= best[0].size
        return best

    def clear(self) -> None:
        self._states.clear()
        self.used_bytes = 0
