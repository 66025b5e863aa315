"""How much of a sequence's memory a new prompt can use without reading it again.

A sequence of the local model's context (a slot, or a state saved from one)
holds the tokens of a conversation as the model last read them. The next turn's
prompt is usually those tokens plus the reply and the new question: the common
prefix is kept. Once the conversation is past its history budget, every turn
drops the oldest turns, so the prompt differs right after the system prompt.
llama.cpp can remove those tokens from the memory (``llama_memory_seq_rm``)
and keep the rest where it is, or move it back (``llama_memory_seq_add``), for
models whose positions are rotary (``llama_memory_can_shift``): the prompt is
then still almost all in memory, and only the new question is read
(``voice.responders.batching`` says when the rest is moved).

``plan`` finds the longest common prefix and, when shifting is allowed, the one
gap whose removal lines up the most of the rest. It compares tokens only, so a
memory is used only for the tokens it really holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Dropping tokens from the middle of a memory is not worth it to save a handful of tokens.
MIN_SHIFTED_TOKENS = 16
# Places where the rest might line up, tried at most: a memory full of one token (a loop) must not cost more.
MAX_CANDIDATES = 64


@dataclass(frozen=True)
class Reuse:
    """Keep ``held[:prefix]``, drop the ``gap`` tokens after it, keep the ``tail`` after those (moved back)."""

    prefix: int
    gap: int = 0
    tail: int = 0

    @property
    def tokens(self) -> int:
        """Prompt tokens found in memory."""
        return self.prefix + self.tail


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case (a continuing turn), compared at C speed
        return n
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return n  # pragma: no cover - the slices differed, so a pair does


def plan(held: Sequence[int], prompt: Sequence[int], *, shift: bool) -> Reuse:
    """The most of ``prompt`` that ``held`` gives, keeping a prefix and, with ``shift``, dropping one gap."""
    prefix = common_prefix(held, prompt)
    best = Reuse(prefix)
    if not shift or prefix >= len(prompt) or prefix >= len(held):
        return best
    wanted = prompt[prefix]
    start = prefix + 1
    for _candidate in range(MAX_CANDIDATES):
        try:
            at = held.index(wanted, start)
        except ValueError:
            break
        tail = common_prefix(held[at:], prompt[prefix:])
        if tail >= MIN_SHIFTED_TOKENS and tail > best.tail:
            best = Reuse(prefix, gap=at - prefix, tail=tail)
        start = at + 1
    return best
