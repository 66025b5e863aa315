"""Past the history budget: drop the oldest turns from the model's memory (a context shift), or in blocks?

The issue named two ways to keep a long conversation cheap. This compares them
on the same conversation, with the local model in this process (a policy
comparison, not a latency figure: those come through the server in
``bench.underway``):

- **Context shift** (what the engine does): every turn past the budget drops
  just enough of the oldest turns from the prompt and from the KV memory, and
  moves the rest back, so each turn reads only its new question.
- **Blocks**: the oldest turns are dropped a block at a time (``BLOCK_TURNS``
  messages), so the prompt's start stays the same for several turns; each time
  a block goes, everything after the system prompt is read again.

Both answer greedily, and each shifted answer is compared with the answer the
model gives after reading the same prompt from scratch: a shifted memory is an
approximation (the kept tokens were computed beside turns now dropped), and
"the same words" is what holds on any machine.
"""

from __future__ import annotations

import statistics
import threading

from voice.responders import reuse
from voice.responders.base import drop_oldest_turn
from voice.responders.batching import BatchEngine, Generation

from .tables import table
from .talk import Talk

BLOCK_TURNS = 4  # messages dropped at once by the block policy (two question-answer pairs, half the budget)
HISTORY_TOKENS = 320  # a small budget, so that most turns of a run are past it
SYSTEM = "You are a helpful voice assistant. Answer in one or two short sentences."
ANSWER_TOKENS = 40


class BlockEngine(BatchEngine):
    """The block policy: the engine's own, but its prompts lose the oldest turns ``BLOCK_TURNS`` at a time."""

    def _fit(self, messages, total):
        shorter = [messages]
        while (less := drop_oldest_turn(shorter[-1])) is not None:
            shorter.append(less)
        for kept in shorter[:: BLOCK_TURNS // 2] + shorter[-1:]:  # a turn drops a pair: two messages
            tokens = self._tokens(kept)
            if len(tokens) <= self.prompt_limit:
                break
        return kept, tokens

    def _plan(self, held, prompt):
        return reuse.plan(held, prompt, shift=False)  # the prompt's start stays put: nothing to shift


def _engine(kind=BatchEngine, budget: int = HISTORY_TOKENS) -> BatchEngine:
    from voice.responders.local import model_path

    # One slot and no saved states: what is measured is the policy, not the store.
    engine = kind(str(model_path()), sequences=1, context=2048, threads=1, history_tokens=budget, state_bytes=0)
    engine.start().wait_loaded()
    return engine


def _ask(engine, messages: list[dict]):
    pieces: list[str] = []
    ended = threading.Event()
    generation = Generation(
        messages=messages,
        max_tokens=ANSWER_TOKENS,
        temperature=0.0,
        on_text=pieces.append,
        on_end=lambda error: ended.set(),
    )
    engine.submit(generation)
    if not ended.wait(120):
        raise RuntimeError("the model did not answer within 120 s")
    return "".join(pieces), generation


def compare(turns: int, budget: int = HISTORY_TOKENS) -> dict:
    """``turns`` new questions in one conversation, past a history ``budget`` of the model's tokens after a few."""
    talk = Talk()
    questions = [talk.ask() for _ in range(turns)]
    shifted, blocks, fresh = _engine(budget=budget), _engine(BlockEngine, budget), _engine(budget=budget)
    try:
        history: list[dict] = []
        block_history: list[dict] = []
        rows = []
        for question in questions:
            asked = {"role": "user", "content": question}
            text, generation = _ask(shifted, [{"role": "system", "content": SYSTEM}, *history, asked])
            block_text, block_generation = _ask(blocks, [{"role": "system", "content": SYSTEM}, *block_history, asked])
            row = {"read": generation.read, "block_read": block_generation.read, "past_budget": False}
            if generation.dropped_turns:
                # The same prompt read from scratch: another conversation takes the fresh engine's only slot first.
                _ask(fresh, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": talk.ask()}])
                kept = [generation.messages[0], *generation.messages[1 + generation.dropped_turns :]]
                fresh_text, fresh_generation = _ask(fresh, kept)
                assert fresh_generation.prompt == generation.prompt, "not the same prompt"
                row |= {"past_budget": True, "same": text == fresh_text, "shifted": generation.shifted}
            rows.append(row)
            history += [asked, {"role": "assistant", "content": text}]
            block_history += [asked, {"role": "assistant", "content": block_text}]
    finally:
        for engine in (shifted, blocks, fresh):
            engine.close()
    past = [row for row in rows if row["past_budget"]]
    return {
        "turns": turns,
        "past_budget": len(past),
        "shift_read_mean": statistics.mean([row["read"] for row in rows[1:]]),
        "shift_read_max": max(row["read"] for row in rows[1:]),
        "block_read_mean": statistics.mean([row["block_read"] for row in rows[1:]]),
        "block_read_max": max(row["block_read"] for row in rows[1:]),
        "same_answers": sum(row["same"] for row in past),
    }


def tables(results: dict) -> list[tuple[str, str]]:
    r = results
    return [
        (
            f"Past the history budget: context shift against dropping {BLOCK_TURNS // 2} turns at a time "
            f"({r['turns']} turns of new questions, {r['past_budget']} past the budget; prompt tokens read per turn "
            "after the first)",
            table(
                ["policy", "mean read", "most read", "answers as from a fresh read"],
                [
                    [
                        "context shift (the engine)",
                        round(r["shift_read_mean"]),
                        r["shift_read_max"],
                        f"{r['same_answers']} of {r['past_budget']} word for word",
                    ],
                    [f"blocks of {BLOCK_TURNS // 2} turns", round(r["block_read_mean"]), r["block_read_max"], "-"],
                ],
            ),
        )
    ]
