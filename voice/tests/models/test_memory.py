"""Long conversations with the real model: what it already knows is never read again.

llama.cpp and the bundled SmolLM2-135M, no mock. The tests count prompt
tokens the model had to read (``Generation.read``) and where each reply's
memory came from, which hold on any machine; the words differ between CPUs,
so only replies computed the same way on the same machine are compared.
"""

import ctypes

from voice.responders.batching import COLD, RESTORED, SLOT
from voice.responders.reuse import common_prefix
from voice.tests.generations import Reply, started_engine, wait_for

SYSTEM = "You are a helpful voice assistant. Answer in one short sentence."
QUESTIONS = [
    "What is the capital of France?",
    "Name a big animal.",
    "What colour is grass?",
    "How many legs has a spider?",
    "Where do penguins live?",
    "What do bees make?",
    "Why is the sea salty?",
    "What is rain?",
    "Is ice cold?",
    "Name a fruit.",
]
# Earlier turns dense in numbers: about three characters a token, so a budget in characters lets them overflow.
NUMBERS = " ".join(f"{n * 7919 % 10007:05d}-{n * 104729 % 99991:05d}" for n in range(60))


def turn(engine, history: list[dict], question: str, **options) -> Reply:
    messages = [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": question}]
    reply = Reply("", messages=messages, max_tokens=24, **options).submit(engine).wait()
    assert reply.error is None, reply.error
    history += [{"role": "user", "content": question}, {"role": "assistant", "content": reply.text}]
    return reply


def long_prompt(**options) -> Reply:
    """A reply whose conversation holds about 1,000 tokens of numbers the model has never read."""
    history = []
    for _n in range(4):
        history += [{"role": "user", "content": f"Read these back: {NUMBERS}"}, {"role": "assistant", "content": "OK."}]
    question = {"role": "user", "content": "Which came first?"}
    return Reply("", messages=[{"role": "system", "content": SYSTEM}, *history, question], **options)


def question_tokens(engine, question: str) -> int:
    return len(engine._model.tokenize(question.encode(), add_bos=False, special=False))


def talk(engine, questions, history=None) -> tuple[list[dict], list[Reply]]:
    history = [] if history is None else history
    return history, [turn(engine, history, question) for question in questions]


def test_past_its_budget_a_conversation_reads_only_the_new_question():
    with started_engine() as engine:
        _history, replies = talk(engine, QUESTIONS)
        lengths = [question_tokens(engine, question) for question in QUESTIONS]
    past_budget = [reply for reply in replies if reply.generation.dropped_turns]
    assert len(past_budget) >= 3, [len(r.generation.prompt) for r in replies]  # the budget was passed
    for reply, length in zip(replies[1:], lengths[1:], strict=True):
        generation = reply.generation
        assert generation.memory == SLOT
        assert len(generation.prompt) <= engine.prompt_limit
        # The question, its chat markup and the end of the last reply: nothing of the history again.
        assert generation.read <= length + 32, (reply.text, generation.read)
        assert reply.text.strip()
    # The oldest turns left the memory itself, not just the prompt.
    assert all(reply.generation.shifted > 0 for reply in past_budget)


def test_dropped_turns_leave_a_gap_and_keys_move_back_only_near_the_position_limit():
    """Moving keys back (a K-shift) costs every reply a pause: past the budget it is not done every turn."""
    with started_engine() as engine:
        _history, replies = talk(engine, QUESTIONS)
        (slot,) = [s for s in engine.slots if s.tokens]
        gaps = sum(b - a > 1 for a, b in zip(slot.positions, slot.positions[1:], strict=False))
        names = [name for name, _value in engine.events_seen]
    assert sum(reply.generation.shifted > 0 for reply in replies) >= 3
    assert gaps >= 1 and "key_shifts" not in names  # the dropped turns left a gap; nothing was moved
    assert slot.positions == sorted(slot.positions) and len(set(slot.positions)) == len(slot.positions)

    limit = 240  # ten short turns reach about 290 positions: the gaps are closed on the way
    with started_engine(position_limit=limit) as engine:
        _history, replies = talk(engine, QUESTIONS)
        (slot,) = [s for s in engine.slots if s.tokens]
        lengths = [question_tokens(engine, question) for question in QUESTIONS]
        names = [name for name, _value in engine.events_seen]
    assert names.count("key_shifts") >= 1
    assert slot.next_position < limit
    # After the keys moved, a turn still reads only its question.
    for reply, length in zip(replies[1:], lengths[1:], strict=True):
        assert reply.generation.memory == SLOT and reply.generation.read <= length + 32, reply.generation.read
        assert reply.text.strip()


def test_a_history_dense_in_numbers_is_trimmed_in_tokens_never_failed():
    history = []
    for _n in range(4):
        history += [
            {"role": "user", "content": f"Read these back: {NUMBERS}"},
            {"role": "assistant", "content": NUMBERS},
        ]
    with started_engine(history_tokens=600) as engine:
        reply = turn(engine, history, "Which number came first?")
    assert reply.generation.dropped_turns >= 6
    assert len(reply.generation.prompt) <= 600


def test_a_conversation_whose_slot_was_taken_is_restored_and_answers_as_if_never_moved():
    follow_up = "And what is the capital of Italy?"
    with started_engine(sequences=2) as roomy:
        history, _replies = talk(roomy, QUESTIONS[:3])
        turn(roomy, [], "Say the word blue.")  # the other slot: nothing is moved
        kept = turn(roomy, history, follow_up)
    with started_engine(sequences=1) as tight:
        history, _replies = talk(tight, QUESTIONS[:3])
        other = turn(tight, [], "Say the word blue.")  # takes the only slot: the first conversation is saved
        resumed = turn(tight, history, follow_up)
        names = [name for name, _value in tight.events_seen]
        follow_up_tokens = question_tokens(tight, follow_up)
    assert other.generation.memory == COLD and kept.generation.memory == SLOT
    assert resumed.generation.memory == RESTORED and "states_saved" in names
    assert resumed.generation.read <= follow_up_tokens + 32
    # The restored memory is the very one that was saved: the same greedy answer, word for word.
    assert resumed.text == kept.text


def test_after_a_restart_conversations_resume_from_disk_without_reading_their_history(tmp_path):
    on_disk = {"sequences": 1, "state_dir": str(tmp_path), "state_file_bytes": 256 << 20}
    with started_engine(**on_disk) as engine:
        first, _replies = talk(engine, QUESTIONS[:3])
        second, _replies = talk(engine, QUESTIONS[3:5])  # takes the only slot: the first is saved in memory
    # Closed: the saved state and the slot's memory were written to disk.
    with started_engine(**on_disk) as restarted:
        resumed = [turn(restarted, history, "What did I ask first?") for history in (first, second)]
        length = question_tokens(restarted, "What did I ask first?")
    for reply in resumed:
        assert reply.generation.memory == RESTORED and reply.generation.read <= length + 32, reply.generation.read
    # Without the disk, the same turn reads its whole history.
    with started_engine(sequences=1) as forgetful:
        cold = turn(forgetful, first[:-2], "What did I ask first?")
    assert cold.generation.memory == COLD and cold.generation.read > 60


def test_a_state_that_fails_to_restore_is_dropped_and_the_history_read_again(caplog):
    with started_engine(sequences=1) as engine:
        history, _replies = talk(engine, QUESTIONS[:3])
        turn(engine, [], "Say the word blue.")
        (saved,) = engine.states._states.values()
        ctypes.memset(saved.data, 0, saved.size)  # corrupt, in place
        resumed = turn(engine, history, "What did I ask first?")
        again = turn(engine, history, "Thank you.")
    assert resumed.generation.memory == COLD
    assert resumed.generation.read > 60  # the whole history, read again
    assert [name for name, _value in engine.events_seen].count("state_failures") == 1
    assert again.generation.memory == SLOT  # and from then on it is in memory again
    assert "Restoring a conversation's memory failed" in caplog.text


def test_a_new_conversation_starts_from_the_system_prompts_memory():
    with started_engine(sequences=3) as engine:
        first = turn(engine, [], QUESTIONS[0])
        second = turn(engine, [], QUESTIONS[1])  # an empty slot of its own
    assert first.generation.reused == 0
    assert second.generation.memory == COLD
    assert second.generation.reused >= second.generation.system_tokens > 5


def test_a_long_prompt_is_read_in_pieces_behind_a_short_ones_first_token():
    with started_engine(sequences=2, context=2048, history_tokens=1900, prefill_chunk=32) as engine:
        long_one = long_prompt(max_tokens=4)
        long_one.submit(engine)
        wait_for(
            lambda: long_one.generation.slot is not None and len(long_one.generation.slot.tokens) > 64,
            "the long prompt to be read",
        )
        short_one = Reply("Say hello.", system=SYSTEM, max_tokens=4).submit(engine)
        short_one.wait()
        assert not long_one.ended.is_set() and long_one.generation.pending  # it did not wait for the long one
        long_one.wait()
    prompt = len(long_one.generation.prompt) - long_one.generation.reused
    # A step reads at most prefill_chunk prompt tokens: the long prompt took that many steps at least.
    assert long_one.steps_at_text[0] >= prompt / 32
    assert short_one.steps_at_text[0] < long_one.steps_at_text[0]


def test_stopping_a_reply_mid_prompt_frees_its_slot_at_once():
    with started_engine(sequences=1, context=2048, history_tokens=1900) as engine:
        stopped = long_prompt()
        stopped.submit(engine)
        wait_for(
            lambda: stopped.generation.slot is not None and len(stopped.generation.slot.tokens) > 64,
            "the prompt to be read",
        )
        steps = engine.steps
        engine.cancel(stopped.generation)
        stopped.wait()
        assert engine.active == 0 and engine.steps <= steps + 1
        after = Reply("Say hello.", system=SYSTEM, max_tokens=4).submit(engine).wait()
    assert after.error is None and after.text.strip() and not stopped.pieces


def test_a_long_prompt_not_yet_due_waits_for_steps_of_its_own_not_riding_along_anothers():
    with started_engine(sequences=2, context=2048, history_tokens=1900, prefill_chunk=32) as engine:
        writer = Reply("Count from one to two hundred.", system=SYSTEM, max_tokens=400, ignore_end=True).submit(engine)
        wait_for(lambda: len(writer.pieces) >= 3, "the other reply to be writing")
        long_one = long_prompt(max_tokens=4)
        long_one.submit(engine)
        wait_for(lambda: long_one.generation.slot is not None, "the long prompt's slot")
        unread = len(long_one.generation.pending)
        written = len(writer.pieces)
        wait_for(lambda: len(writer.pieces) >= written + 20, "the writer's next words")
        # The writer is due at every step (no listener paces it): its steps did not carry the long prompt,
        # which is due only by when it could be read alone (seconds away).
        assert long_one.generation.prompt_due > long_one.generation.submitted_at + 3
        assert len(long_one.generation.pending) == unread
        long_one.wait()  # and once due, it is read
        engine.cancel(writer.generation)
    assert long_one.error is None and long_one.text.strip()


def test_a_conversation_leaving_its_slot_is_saved_even_while_another_ones_memory_is_being_shifted():
    with started_engine(sequences=2) as engine:
        long_history, _replies = talk(engine, QUESTIONS)  # past its budget: its next turn shifts its memory
        other_history, _replies = talk(engine, QUESTIONS[:3])  # in the other slot
        shifted = Reply(
            "", messages=[{"role": "system", "content": SYSTEM}, *long_history, {"role": "user", "content": "Thanks."}]
        )
        newcomer = Reply("Say the word blue.", system=SYSTEM)
        with engine._changed:  # both seated in one pass, before any decode applies the shift
            shifted.submit(engine)
            newcomer.submit(engine)
        shifted.wait()
        newcomer.wait()
        back = turn(engine, other_history, "And one more thing?")
    assert shifted.generation.shifted > 0 and newcomer.generation.memory == COLD
    # The newcomer took the other conversation's slot: its memory was saved, and it comes back restored.
    assert back.generation.memory == RESTORED


def test_a_long_prompt_says_how_its_reading_goes_so_that_its_reply_is_not_given_up():
    with started_engine(sequences=1, context=2048, history_tokens=1900, progress_every=0.2) as engine:
        reply = long_prompt(max_tokens=2).submit(engine).wait()
    assert reply.error is None
    waits = [wait for position, wait in reply.queued if position == 0]
    # The first words are a guess; the engine then times its own reading, and the wait runs down.
    later = waits[len(waits) // 2 :]
    assert len(waits) >= 3 and later[-1] < later[0] / 2


def test_a_long_prompts_deadline_and_told_wait_follow_the_reading_speed_timed_here():
    with started_engine(sequences=1, context=2048, history_tokens=1900, progress_every=0.2, cores=None) as engine:
        engine._use_threads(1)
        guess = engine._prompt_seconds
        reply = long_prompt(max_tokens=2).submit(engine).wait()
        timed = engine._prompt_seconds
    assert reply.error is None
    assert timed != guess
    # The reading speed it learned tells the time this reading took, within a factor of two.
    generation = reply.generation
    took = generation.first_token_at - generation.admitted_at
    assert took / 2 <= timed * generation.read <= took * 2, (timed * generation.read, took)


def test_a_conversation_that_begins_like_another_takes_a_slot_of_its_own():
    # Questions often begin alike: eleven tokens in common here, past the chat markup.
    alike = ["How long does it take to fix a squeaky door with oil?", "How long does it take to fix a squeaky door?"]
    with started_engine(sequences=3) as engine:
        first = engine._tokens([{"role": "system", "content": SYSTEM}, {"role": "user", "content": alike[0]}])
        second = engine._tokens([{"role": "system", "content": SYSTEM}, {"role": "user", "content": alike[1]}])
        system = len(engine._tokens([{"role": "system", "content": SYSTEM}]))
        history, _replies = talk(engine, alike[:1])
        other = turn(engine, [], alike[1])
        going_on = turn(engine, history, QUESTIONS[0])
        asked = question_tokens(engine, QUESTIONS[0])
    assert common_prefix(first, second) - system > 8
    # The other conversation read its question in a slot of its own; the first one's memory stayed where it was.
    assert other.generation.memory == COLD
    assert going_on.generation.memory == SLOT and going_on.generation.read <= asked + 32
