"""Continuous batching with the real model: llama.cpp and the bundled SmolLM2-135M, no mock.

The model's exact words differ between CPUs (llama.cpp is compiled for the
machine), and slightly between batch sizes; these tests assert what holds on
any machine: who gets which text, when replies join and leave, and the bounds.
"""

import time

import pytest

from voice.exceptions import ResponderBusy, ResponderError
from voice.tests import generations
from voice.tests.generations import WAIT, Reply, wait_for


def started_engine():
    # The whole context as history (the engine keeps 64 tokens for the reply): nothing is trimmed here.
    return generations.started_engine(sequences=4, context=512, queue_limit=2, history_tokens=512)


@pytest.fixture(scope="module")
def engine():
    with started_engine() as engine:
        yield engine


def alone(engine, text, **kwargs) -> Reply:
    return Reply(text, **kwargs).submit(engine).wait()


QUESTIONS = [
    "Spell the word cat backwards.",
    "What colour is the sky on a clear day?",
    "Name a fruit that is yellow.",
]


def test_replies_decoded_together_each_answer_their_own_prompt():
    # Two engines, so that neither run finds the other's prompts in memory.
    with started_engine() as single:
        by_itself = [alone(single, question).pieces for question in QUESTIONS]
    with started_engine() as batched:
        together = [Reply(question).submit(batched) for question in QUESTIONS]
        for reply in together:
            reply.wait()
        assert batched.steps < sum(len(pieces) for pieces in by_itself)  # they really shared steps
    assert all(reply.error is None and reply.text.strip() for reply in together)
    # Each begins as it does alone (a bigger batch's numbers may differ in the
    # last digits, so later words may drift), and no reply is another's.
    for reply, single_pieces in zip(together, by_itself, strict=True):
        assert reply.pieces[:3] == single_pieces[:3], (reply.text, "".join(single_pieces))
    assert len({reply.text for reply in together}) == len(QUESTIONS)


def test_a_reply_arriving_mid_batch_joins_at_the_next_steps(engine):
    # Replies of a known length (the model's end-of-turn token is never sampled): how long the model would
    # have written differs between CPUs.
    first = Reply("Count from one to forty in words.", max_tokens=120, ignore_end=True).submit(engine)
    wait_for(lambda: len(first.pieces) >= 5, "the first reply to be writing")
    second = Reply("Say hello.", max_tokens=8).submit(engine)
    second.wait()
    # The second reply was written while the first still was: it did not wait for its end.
    assert second.text.strip() and not first.ended.is_set()
    first.wait()
    assert first.generation.produced == 120


def test_a_stopped_reply_leaves_the_batch_within_a_step(engine):
    stopped = Reply("Count from one to forty in words.", max_tokens=120, ignore_end=True).submit(engine)
    other = Reply("Count from forty down to one in words.", max_tokens=120, ignore_end=True).submit(engine)
    wait_for(lambda: len(stopped.pieces) >= 3, "the reply to be writing")
    steps = engine.steps
    engine.cancel(stopped.generation)
    stopped.wait()
    assert stopped.error is None
    # At most the step already under way when it was stopped.
    assert all(step <= steps + 1 for step in stopped.steps_at_text)
    other.wait()
    assert other.steps_at_text[-1] > steps + 1  # the batch went on without it


def test_a_reply_not_yet_due_waits_while_others_are_written(engine):
    due_at = [time.monotonic() + WAIT]
    paced = Reply("Count from one to forty.", max_tokens=30, due=lambda: due_at[0], ignore_end=True).submit(engine)
    wait_for(lambda: paced.generation.next_token is not None, "the paced reply's first token")
    written = len(paced.pieces)
    other = alone(engine, "Say hello.", max_tokens=8)
    assert other.text.strip()
    assert len(paced.pieces) == written  # its listener had plenty: it was not decoded meanwhile
    due_at[0] = 0.0
    engine.wake()
    paced.wait()
    assert paced.generation.produced == 30


def test_the_next_turn_reuses_the_conversations_memory(engine):
    first = alone(engine, "My favourite colour is green. Say OK.", max_tokens=12)
    messages = [
        *first.generation.messages,
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "What did I say?"},
    ]
    second = Reply("", max_tokens=8)
    second.generation.messages = messages
    second.submit(engine).wait()
    # Everything up to the first reply was in the slot's memory already.
    assert second.generation.reused >= len(first.generation.prompt)
    assert second.generation.reused > len(second.generation.prompt) - 40


def test_when_every_sequence_is_busy_replies_wait_in_line_then_are_refused(engine):
    busy = [Reply(f"Count from {n} to {n + 60}.", max_tokens=200, ignore_end=True) for n in range(engine.sequences)]
    for reply in busy:
        reply.submit(engine)
    wait_for(lambda: engine.active == engine.sequences, "every sequence to be busy")
    waiting = [Reply("Say hello.", max_tokens=4).submit(engine) for _ in range(engine.queue_limit)]
    wait_for(lambda: all(reply.queued for reply in waiting), "the waiting replies to be told their place")
    assert [reply.queued[0][0] for reply in waiting] == list(range(1, engine.queue_limit + 1))
    with pytest.raises(ResponderBusy):
        Reply("One too many.").submit(engine)
    for reply in busy:
        engine.cancel(reply.generation)
    for reply in waiting:
        assert reply.wait().error is None and reply.text.strip()


def test_a_prompt_longer_than_a_sequence_fails_plainly(engine):
    reply = alone(engine, "word " * 600)
    assert isinstance(reply.error, ResponderError) and reply.error.code == "llm_context"
    assert "too long" in reply.error.public_message


def test_a_reply_stops_at_the_end_of_its_sequences_memory(engine):
    prompt_tokens = len(alone(engine, "Say yes.", max_tokens=1).generation.prompt)
    # A question that leaves room for about ten tokens of reply, and a reply allowed far more.
    question = "Say yes." + " word" * (engine.context - prompt_tokens - 10)
    reply = alone(engine, question, max_tokens=10_000)
    assert reply.error is None  # without the bound, decoding past the sequence's memory fails
    assert len(reply.generation.prompt) + reply.generation.produced <= engine.context
