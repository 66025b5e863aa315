"""The local model's memory bookkeeping, on token lists: what a prompt reuses, what is kept aside, what is trimmed.

The real engine runs these against llama.cpp in models/test_memory.py; here the
rules themselves, without a model.
"""

import os
import shutil
import time

from voice.responders.base import drop_oldest_turn
from voice.responders.batching import BatchEngine
from voice.responders.reuse import MIN_SHIFTED_TOKENS, Reuse, common_prefix, plan
from voice.responders.states import SavedState, SavedStates, StateFiles, state_files

SYSTEM = [1, 2, 3, 4]
HEADER = [90, 91]  # a turn's markup: the same at the start of every turn


def turn(n: int, length: int = 20) -> list[int]:
    return HEADER + [1000 * n + i for i in range(length)]


def test_a_continuing_turn_reuses_all_its_conversation_holds():
    held = SYSTEM + turn(1) + turn(2)
    prompt = held + turn(3)
    assert plan(held, prompt, shift=True) == Reuse(prefix=len(held))
    assert common_prefix(held, prompt) == len(held)


def test_past_the_budget_the_dropped_turns_are_a_gap_and_the_rest_is_moved_back():
    held = SYSTEM + turn(1) + turn(2) + turn(3)
    prompt = SYSTEM + turn(2) + turn(3) + turn(4)  # turn 1 left the prompt
    reuse = plan(held, prompt, shift=True)
    # The turns' shared markup stays in the prefix; the gap is exactly turn 1's length.
    assert reuse == Reuse(prefix=len(SYSTEM) + len(HEADER), gap=len(turn(1)), tail=len(turn(2) + turn(3)) - len(HEADER))
    assert reuse.tokens == len(SYSTEM + turn(2) + turn(3))
    kept = held[: reuse.prefix] + held[reuse.prefix + reuse.gap : reuse.prefix + reuse.gap + reuse.tail]
    assert kept == prompt[: reuse.tokens]
    # A model that cannot shift keeps the prefix only.
    assert plan(held, prompt, shift=False) == Reuse(prefix=len(SYSTEM) + len(HEADER))


def test_no_shift_for_a_handful_of_tokens_or_another_conversation():
    held = SYSTEM + turn(1) + turn(2, length=MIN_SHIFTED_TOKENS - 4)
    prompt = SYSTEM + turn(2, length=MIN_SHIFTED_TOKENS - 4) + turn(3)
    assert plan(held, prompt, shift=True).gap == 0  # too few tokens line up to be worth a shift
    other = SYSTEM + turn(7) + turn(8)
    assert plan(held, other, shift=True) == Reuse(prefix=len(SYSTEM) + len(HEADER))


def shifted(held, prompt):
    return plan(held, prompt, shift=True)


def state(tokens: list[int], size: int = 100) -> SavedState:
    return SavedState(tokens, bytearray(size), list(range(len(tokens))))


def test_a_saved_state_is_taken_only_by_a_prompt_it_holds_more_of():
    states = SavedStates(limit_bytes=1000)
    mine, theirs = SYSTEM + turn(1) + turn(2), SYSTEM + turn(5) + turn(6)
    states.put(state(mine))
    states.put(state(theirs))
    prompt = mine + turn(3)
    # Nothing beyond what is already had (a slot holding as much): not taken.
    assert states.take_best(prompt, shifted, at_least=len(mine)) is None
    found, reuse = states.take_best(prompt, shifted, at_least=len(SYSTEM) + 4)
    assert found.tokens == mine and reuse.tokens == len(mine)
    assert len(states) == 1 and states.used_bytes == 100  # taken out: it lives in a slot now
    # Another conversation shares only the system prompt and its markup: no state of its own.
    assert states.take_best(SYSTEM + turn(9), shifted, at_least=len(SYSTEM) + 4) is None


def test_the_store_is_bounded_and_evicts_the_least_recently_saved():
    states = SavedStates(limit_bytes=250)
    for n in range(4):
        states.put(state(SYSTEM + turn(n)))
    assert len(states) == 2 and states.used_bytes == 200 and states.evicted == 2
    assert [s.tokens for s in states._states.values()] == [SYSTEM + turn(2), SYSTEM + turn(3)]
    states.put(state(SYSTEM + turn(9), size=251))  # larger than the whole store: never kept, nothing evicted
    assert len(states) == 2
    assert not SavedStates(limit_bytes=0).fits(1)  # a store of size 0 is off


def test_states_the_memory_store_evicts_are_kept_on_disk_and_found_after_a_restart(tmp_path):
    states = SavedStates(limit_bytes=250, files=StateFiles(tmp_path, limit_bytes=10_000))
    gapped = list(range(len(SYSTEM))) + list(range(90, 90 + len(turn(1))))  # turns were dropped before it
    first = SavedState(SYSTEM + turn(1), bytes(range(100)), gapped)
    states.put(first)
    for n in range(2, 4):
        states.put(state(SYSTEM + turn(n)))
    assert len(states) == 2 and len(states.files) == 1  # the oldest went to disk, not away

    states.keep_on_disk([state(SYSTEM + turn(7))])  # closing: memory and the slots' memories to disk
    assert len(states) == 0 and len(states.files) == 4
    restarted = SavedStates(limit_bytes=250, files=StateFiles(tmp_path, limit_bytes=10_000))
    assert len(restarted.files) == 4 and restarted.files.used_bytes == 400

    found, reuse = restarted.take_best(SYSTEM + turn(1) + turn(5), shifted, at_least=len(SYSTEM) + 4)
    assert (found.tokens, found.positions, bytes(found.data)) == (first.tokens, first.positions, first.data)
    assert reuse.tokens == len(first.tokens)
    assert len(restarted.files) == 3 and len(list(tmp_path.glob("*.state"))) == 3  # taken: its file is gone
    assert restarted.take_best(SYSTEM + turn(1) + turn(5), shifted, at_least=len(SYSTEM) + 4) is None
    smaller = StateFiles(tmp_path, limit_bytes=200)  # a smaller store after the restart: the oldest files go
    assert len(smaller) == 2 and len(list(tmp_path.glob("*.state"))) == 2


def test_a_state_in_memory_is_preferred_to_one_on_disk_that_keeps_no_more(tmp_path):
    states = SavedStates(limit_bytes=1000, files=StateFiles(tmp_path, limit_bytes=10_000))
    states.files.put(state(SYSTEM + turn(1)))
    states.put(state(SYSTEM + turn(1), size=50))
    found, _reuse = states.take_best(SYSTEM + turn(1) + turn(2), shifted, at_least=len(SYSTEM) + 4)
    assert found.size == 50 and len(states.files) == 1


def test_the_disk_store_is_bounded_and_survives_damaged_and_vanished_files(tmp_path, caplog):
    files = StateFiles(tmp_path, limit_bytes=250)
    for n in range(4):
        files.put(state(SYSTEM + turn(n)))
    assert len(files) == 2 and len(list(tmp_path.glob("*.state"))) == 2  # the oldest files were removed
    files.put(state(SYSTEM + turn(9), size=251))  # larger than the whole store: not written
    assert len(files) == 2

    # Another process took one (its file is gone); another file is damaged: both skipped, both forgotten.
    gone, damaged = sorted(tmp_path.glob("*.state"), key=lambda p: p.stat().st_mtime)
    gone.unlink()
    damaged.write_bytes(damaged.read_bytes()[:20])
    assert files.take_best(SYSTEM + turn(2) + turn(5), shifted, at_least=len(SYSTEM) + 4) is None
    assert files.take_best(SYSTEM + turn(3) + turn(5), shifted, at_least=len(SYSTEM) + 4) is None
    assert len(files) == 0 and files.used_bytes == 0 and not list(tmp_path.iterdir())
    assert "could not read" in caplog.text

    (tmp_path / "junk.state").write_bytes(b"not a state")
    assert len(StateFiles(tmp_path, limit_bytes=250)) == 0 and not list(tmp_path.iterdir())


def test_a_full_or_unwritable_disk_loses_only_the_state(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    files = StateFiles(blocked / "states", limit_bytes=1000)  # its folder cannot be made
    files.put(state(SYSTEM + turn(1)))
    assert len(files) == 0 and files.failures >= 1 and "could not" in caplog.text


def test_states_of_another_model_or_llama_cpp_are_removed(tmp_path):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights")
    old = state_files(tmp_path / "states", weights, 1000, "0.3.35")
    old.put(state(SYSTEM + turn(1)))
    again = state_files(tmp_path / "states", weights, 1000, "0.3.35")
    assert len(again) == 1
    upgraded = state_files(tmp_path / "states", weights, 1000, "0.3.36")
    assert len(upgraded) == 0 and [p.name for p in (tmp_path / "states").iterdir()] == [upgraded.directory.name]


def messages(*roles: str) -> list[dict]:
    return [{"role": role, "content": f"{role} {n}"} for n, role in enumerate(roles)]


def test_the_oldest_turn_goes_first_and_never_the_system_prompt_or_the_question():
    conversation = messages("system", "user", "assistant", "user", "assistant", "user")
    shorter = drop_oldest_turn(conversation)
    # The oldest question goes, and its answer with it: an answer alone only confuses a model.
    assert shorter == [conversation[0], conversation[3], conversation[4], conversation[5]]
    assert drop_oldest_turn(drop_oldest_turn(shorter)) is None  # only the system prompt and question left
    assert drop_oldest_turn(messages("user", "assistant", "user")) == messages("user", "assistant", "user")[2:]


class WordEngine(BatchEngine):
    """The engine's prompt fitting with a tokenizer of words: no model."""

    MARKUP = 3  # tokens a message's role and delimiters take

    def _tokens(self, messages):
        count = sum(len(m["content"].split()) + self.MARKUP for m in messages)
        return list(range(count + 2))  # and the generation prompt

    def _content_tokens(self, text):
        return len(text.split())


def test_a_prompt_keeps_exactly_the_most_recent_turns_that_fit():
    import random

    rng = random.Random(7)
    for _case in range(200):
        engine = WordEngine("unused.gguf", history_tokens=rng.randint(20, 300), context=4096)
        turns = [{"role": "system", "content": "be brief " * rng.randint(0, 5)}]
        for _turn in range(rng.randint(0, 20)):
            turns += [{"role": "user", "content": "w " * rng.randint(1, 30)}]
            turns += [{"role": "assistant", "content": "w " * rng.randint(0, 60)}]
        turns.append({"role": "user", "content": "q " * rng.randint(1, 10)})
        total = len(engine._tokens(turns))
        if total <= engine.prompt_limit:
            continue
        kept, tokens = engine._fit(turns, total)
        # The fewest oldest turns left out: one drop fewer would not fit (and the tokens are the kept prompt's).
        assert tokens == engine._tokens(kept)
        candidates = [turns]
        while (shorter := drop_oldest_turn(candidates[-1])) is not None:
            candidates.append(shorter)
        fitting = [c for c in candidates if len(engine._tokens(c)) <= engine.prompt_limit]
        assert kept == (fitting[0] if fitting else candidates[-1])


def test_writes_cut_short_are_cleared_and_a_removed_folder_is_made_again(tmp_path):
    old, fresh = tmp_path / "old.part", tmp_path / "fresh.part"
    old.write_bytes(b"half a state")
    fresh.write_bytes(b"another process is writing this")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    files = StateFiles(tmp_path, limit_bytes=1000)
    assert not old.exists() and fresh.exists()  # only a write nobody finished is removed
    shutil.rmtree(tmp_path)  # another process (another model) removed the folder
    files.put(state(SYSTEM + turn(1)))
    assert len(files) == 1 and len(list(tmp_path.glob("*.state"))) == 1
