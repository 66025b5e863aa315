"""Continuous batching: every reply of the local model decoded together, in one llama.cpp context.

One thread owns the context. At each step it builds one batch: the next token
of every reply that is writing and due (its listener will need more text
soon, ``Generation.due``), and a bounded slice of the prompts of replies that
have joined, shortest first, at most VOICE_LLM_PREFILL_CHUNK tokens: a long
prompt is read in pieces between other replies' tokens and never holds back
their first words, and no step costs more than a fraction of a second. A new
reply joins at the next step; a stopped one leaves at once, so barge-in costs
at most one step.

The context has ``sequences`` slots of ``context`` tokens of KV memory each,
allocated when the model loads (SmolLM2-135M: about 23 KB a token, so 16 x 2048
tokens is about 750 MB). The model is never made to read again what a slot
already holds:

- A slot keeps its tokens when its reply ends: the conversation's next turn
  finds them and reads only what is new. Past the history budget
  (VOICE_LLM_HISTORY_TOKENS, counted in the model's tokens), the oldest turns
  leave the prompt, and they leave the memory too (``voice.responders.reuse``).
  The rest stays at its positions: rotary positions only see distances, so the
  gap reads as earlier talk. Moving the keys back (llama.cpp's K-shift) rotates
  every key of the whole context at the next decode, about a second on one
  core for 16 x 2048 cells, and every reply waits for it; so it is done only
  when a sequence's positions near the model's trained context, once in many
  turns (``Slot.positions``).
- When a slot is given to another conversation, the memory it held is saved
  (``voice.responders.states``) and restored when that conversation speaks again.
- A slot that has never held anything starts from a copy of the system
  prompt's memory, read once per process.

When every slot is writing, a new reply waits in line and is told its place
(``Generation.on_queued``); past ``queue_limit`` waiting replies, new ones are
refused (``ResponderBusy``).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..exceptions import ResponderBusy, ResponderError, ResponderUnavailable
from ..scheduling import Cores
from . import reuse, weights
from .base import drop_oldest_turn
from .states import SavedState, SavedStates, state_files

logger = logging.getLogger(__name__)

# How long the thread sleeps at most when no reply is due (a stop or a new reply wakes it at once).
IDLE_WAIT = 0.5
# Tokens a slot must hold past what the next prompt keeps before its memory is worth saving.
WORTH_SAVING = 32
# Seconds to read a prompt token on one core until the engine has timed its own (SmolLM2-135M as Q8_0 here:
# about 280 tokens/s; as Q4_1 about 130): a long prompt's deadline, and the wait it is told.
PROMPT_SECONDS = 1 / 250
# Prompt tokens a step must read for its time to say what reading costs.
TIMED_PROMPT_TOKENS = 16
# Messages whose length in tokens is remembered (a few conversations' worth).
TOKEN_COUNTS_KEPT = 4096
# Where a reply's conversation memory came from (``Generation.memory``).
SLOT, RESTORED, COLD = "slot", "restored", "cold"


_LOADING = threading.Lock()


def _no_event(name: str, value: float) -> None:
    pass


@dataclass(eq=False)
class Generation:
    """One reply to write. The callbacks run on the engine's thread: keep them short."""

    messages: list[dict]
    max_tokens: int
    temperature: float
    on_text: Callable[[str], None]
    on_end: Callable[[BaseException | None], None]
    on_queued: Callable[[int, float | None], None] = lambda position, wait: None
    # time.monotonic() by which the listener needs more text; 0: now (no one is listening ahead).
    due: Callable[[], float] = lambda: 0.0
    seed: int = field(default_factory=lambda: int.from_bytes(os.urandom(4), "little"))
    # Write max_tokens whatever the model would say (its end-of-turn tokens are never sampled): for
    # benchmarks and tests that need a reply of a known length, as llama.cpp's server's ignore_end.
    ignore_end: bool = False
    # The engine's bookkeeping.
    slot: Slot | None = None
    prompt: list[int] = field(default_factory=list)
    system_tokens: int = 0  # the prompt's first tokens that are the system prompt's
    # ...and up to the end of the first message after it: a memory holding them all holds this conversation.
    opening_tokens: int = 0
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet decoded
    next_token: int | None = None  # sampled, to be decoded at the next step
    produced: int = 0
    reused: int = 0  # prompt tokens found in memory (the slot's, or a saved state's)
    prompt_due: float = 0.0  # time.monotonic() by which its prompt should be read
    # When it was last told how long its prompt's reading may take; 0: never, its prompt being short.
    told_at: float = 0.0
    shifted: int = 0  # tokens of dropped turns taken out of the memory for it (a context shift)
    memory: str = ""  # SLOT, RESTORED or COLD
    dropped_turns: int = 0  # the oldest messages left out to fit the history budget
    stopped: bool = False
    submitted_at: float = field(default_factory=time.monotonic)
    admitted_at: float | None = None  # when it got its slot
    first_token_at: float | None = None
    position: int = 0  # in line; 0 once it has a slot
    text_decoder: codecs.IncrementalDecoder | None = None  # tokens may split a character

    @property
    def read(self) -> int:
        """Prompt tokens the model had to read."""
        return max(0, len(self.prompt) - self.reused)


@dataclass(eq=False)
class Slot:
    """One sequence of the context and the tokens its KV memory holds."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    # Where each token sits in the sequence: increasing, with gaps where dropped turns were.
    positions: list[int] = field(default_factory=list)
    generation: Generation | None = None
    last_used: float = 0.0
    # Its memory was shifted (``llama_memory_seq_add``) and the keys are moved only at the next decode: a copy of
    # this sequence before then would be wrong. Other sequences' copies are not affected.
    shift_pending: bool = False

    @property
    def next_position(self) -> int:
        return self.positions[-1] + 1 if self.positions else 0

    def extend(self, tokens: list[int]) -> None:
        start = self.next_position
        self.tokens.extend(tokens)
        self.positions.extend(range(start, start + len(tokens)))

    def hold(self, tokens: list[int], positions: list[int]) -> None:
        self.tokens, self.positions = list(tokens), list(positions)

    def drop(self, start: int, end: int | None = None) -> None:
        """Forget the tokens ``[start:end]`` (the caller removed them from the memory)."""
        del self.tokens[start:end], self.positions[start:end]

    def clear(self) -> None:
        self.drop(0)


class BatchEngine:
    """The model, its context and the thread that decodes all replies together."""

    def __init__(
        self,
        model_path: str,
        *,
        sequences: int = 16,
        context: int = 2048,
        threads: int = 1,
        batch_tokens: int = 256,
        prefill_chunk: int = 32,
        history_tokens: int = 512,
        state_bytes: int = 512 * 1024 * 1024,
        state_dir: str | None = None,
        state_file_bytes: int = 0,
        queue_limit: int = 32,
        cores: Cores | None = None,
        events: Callable[[str, float], None] = _no_event,
        progress_every: float = 2.0,
        position_limit: int | None = None,
        weights: str = weights.AS_IS,
        converted_dir: str | None = None,
    ) -> None:
        self.model_path = model_path
        self.sequences = max(1, sequences)
        self.context = context
        self.threads = max(1, threads)
        self.batch_tokens = max(self.sequences + 1, batch_tokens)
        self.prefill_chunk = max(1, prefill_chunk)
        # A prompt is trimmed to this many tokens, leaving the reply room in its sequence.
        self.prompt_limit = max(1, min(history_tokens, context - 64))
        self.queue_limit = queue_limit
        self.cores = cores  # a step runs once it holds one (shared with synthesis, by deadline)
        self.events = events  # (name, value): what the engine did, for /metrics (``voice.metrics.llm_event``)
        self.progress_every = progress_every  # seconds between two words on a long prompt's reading
        self.position_limit = position_limit  # None: the model's trained context
        self.weights = weights  # the form to convert the model's weights to (``voice.responders.weights``)
        self.converted_dir = converted_dir  # where converted weights are kept
        self.slots = [Slot(seq_id) for seq_id in range(self.sequences)]
        self.states = SavedStates(state_bytes)
        self.state_dir = state_dir  # saved states on disk, under a folder named for the weights (once loaded)
        self.state_file_bytes = state_file_bytes
        self._file_failures_told = 0
        self.waiting: list[Generation] = []
        self.steps = 0  # decode calls so far
        self._lifetime = None  # smoothed seconds a reply holds its slot, for the expected wait
        self._system_state: SavedState | None = None  # the system prompt's memory, copied into empty slots
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._warned: set[str] = set()
        self._token_counts: dict[str, int] = {}  # a message's text -> its tokens: conversations come back
        self._threads_now = self.threads
        self._prompt_seconds = PROMPT_SECONDS  # a prompt token's reading time, as timed on this machine

    # --- Life cycle ------------------------------------------------------------------
    def start(self) -> BatchEngine:
        self._thread = threading.Thread(target=self._main, name="voice-llm-batch", daemon=True)
        self._thread.start()
        return self

    def wait_loaded(self, timeout: float = 60.0) -> None:
        """Block until the model is loaded; raise what loading raised."""
        if not self._loaded.wait(timeout):
            raise ResponderUnavailable(f"The model did not load within {timeout:g} s.")
        if self._load_error is not None:
            raise self._load_error

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    # --- From any thread -------------------------------------------------------------
    def submit(self, generation: Generation) -> None:
        """Add a reply: it joins the batch at the next step, or waits in line. ResponderBusy if the line is full."""
        with self._changed:
            if self._closed:
                raise ResponderUnavailable("The local model is shutting down.")
            if self._load_error is not None:
                raise self._load_error
            free = any(slot.generation is None for slot in self.slots)
            if not free and len(self.waiting) >= self.queue_limit:
                raise ResponderBusy(f"{len(self.waiting)} replies already wait for the local model.")
            self.waiting.append(generation)
            self._changed.notify_all()

    def cancel(self, generation: Generation) -> None:
        """Stop a reply: it leaves the batch before the next step."""
        with self._changed:
            generation.stopped = True
            self._changed.notify_all()

    def wake(self) -> None:
        """A reply's ``due`` may have moved earlier (its listener ran low): look again now."""
        with self._changed:
            self._changed.notify_all()

    @property
    def active(self) -> int:
        return sum(slot.generation is not None for slot in self.slots)

    # --- The engine's thread ---------------------------------------------------------
    def _main(self) -> None:
        try:
            self._load()
        except BaseException as exc:
            self._load_error = exc if isinstance(exc, ResponderError) else ResponderUnavailable(repr(exc))
            self._loaded.set()
            with self._changed:
                for generation in self.waiting:
                    generation.on_end(self._load_error)
                self.waiting.clear()
            return
        self._loaded.set()
        try:
            self._loop()
        finally:
            self._free()

    def _load(self) -> None:
        with _LOADING:  # llama.cpp's loading is not safe from two threads at once (two engines: tests, bench)
            self._load_model()

    def _load_model(self) -> None:
        try:
            import llama_cpp
            from llama_cpp import _internals
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ResponderUnavailable(f"llama-cpp-python is not installed: {exc}") from exc
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's own log: errors only
        self._llama = llama_cpp
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        path = weights.prepared(self.model_path, self.weights, self.converted_dir)
        try:
            self._model = _internals.LlamaModel(path_model=path, params=model_params, verbose=False)
        except ValueError as exc:
            raise ResponderUnavailable(f"Could not load the model {self.model_path}: {exc}") from exc
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.context * self.sequences
        params.n_seq_max = self.sequences
        params.kv_unified = False  # each sequence its own bounded memory
        params.n_batch = self.batch_tokens
        params.n_ubatch = self.batch_tokens
        params.n_threads = params.n_threads_batch = self.threads
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        except ValueError as exc:
            raise ResponderUnavailable(f"Could not create a context for {self.model_path}: {exc}") from exc
        self._batch = _internals.LlamaBatch(n_tokens=self.batch_tokens, embd=0, n_seq_max=1, verbose=False)
        self._can_shift = bool(llama_cpp.llama_memory_can_shift(self._ctx.memory))
        # Positions past the model's trained context would confuse it; its KV cells are another, smaller limit.
        trained = llama_cpp.llama_model_n_ctx_train(self._model.model)
        self._position_limit = self.position_limit or max(self.context, trained)
        model = self._model
        eos, bos = model.token_eos(), model.token_bos()
        template = model.metadata().get("tokenizer.chat_template")
        if not template:
            raise ResponderUnavailable(f"The model {self.model_path} has no chat template.")
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )
        self._samplers: dict[int, object] = {}
        self._end_tokens = [t for t in range(model.n_vocab()) if llama_cpp.llama_vocab_is_eog(model.vocab, t)]
        if self.state_dir and self.state_file_bytes > 0:
            self.states.files = state_files(self.state_dir, path, self.state_file_bytes, llama_cpp.__version__)
            self._tell_store()
        logger.info(
            "Language model %s loaded: %d sequences of %d tokens%s",
            os.path.basename(path),
            self.sequences,
            self.context,
            "" if self._can_shift else " (no context shift)",
        )

    def _free(self) -> None:
        for sampler in self._samplers.values():
            sampler.close()
        if self.states.files is not None:  # a restart: what is in memory now is read again, not from the history
            held = sorted((s for s in self.slots if len(s.tokens) > WORTH_SAVING), key=lambda s: s.last_used)
            self.states.keep_on_disk(
                state for slot in held if not slot.shift_pending and (state := self._read_state(slot)) is not None
            )
        self.states.clear()
        self._batch.close()
        self._ctx.close()
        self._model.close()

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._drop_stopped()
                if self._closed:
                    for generation in [*self.waiting, *(s.generation for s in self.slots if s.generation)]:
                        generation.stopped = True
                    self._drop_stopped()
                    return
                waiting = list(self.waiting)
            # Tokenizing prompts and saving or restoring memory take milliseconds: not with the lock held,
            # which the event loop takes to submit a reply.
            admitted = self._admit(waiting)
            with self._changed:
                for generation in admitted:
                    self.waiting.remove(generation)
                self._tell_places()
                work, wake_at = self._due_work(time.monotonic())
                if not work:
                    # A reply submitted or stopped while the lock was let go has notified no one: look again.
                    if not self._news(len(waiting) - len(admitted)):
                        timeout = IDLE_WAIT if wake_at is None else min(IDLE_WAIT, wake_at - time.monotonic())
                        self._changed.wait(max(0.0, timeout))
                    continue
            try:
                self._step_on_a_core(work)
            except Exception as exc:
                logger.exception("Decoding failed; its replies end")
                error = ResponderUnavailable(f"The local model failed: {exc!r}")
                with self._changed:
                    for generation in work:
                        self._end(generation, error, forget=True)

    def _drop_stopped(self) -> None:
        """End stopped replies, in a slot or in line: their slot is free at once. Lock held."""
        for slot in self.slots:
            if slot.generation is not None and slot.generation.stopped:
                self._end(slot.generation, None)
        for generation in [g for g in self.waiting if g.stopped]:
            self.waiting.remove(generation)
            generation.on_end(None)

    def _news(self, still_waiting: int) -> bool:
        """Whether a reply came or was stopped since the line was read. Lock held."""
        stopped = any(g.stopped for g in self.waiting) or any(s.generation and s.generation.stopped for s in self.slots)
        free = any(slot.generation is None for slot in self.slots)
        return stopped or (free and len(self.waiting) > still_waiting)

    def _admit(self, waiting: list[Generation]) -> list[Generation]:
        """Give free slots to waiting replies, in order; the ones that left the line (admitted or failed)."""
        gone = []
        for generation in waiting:
            if generation.stopped:
                continue  # ended by _drop_stopped, next time round
            try:
                self._prompt(generation)
                if not self._seat(generation):
                    break
            except Exception as exc:
                if not isinstance(exc, ResponderError):
                    logger.exception("Admitting a reply failed")
                    exc = ResponderUnavailable(f"The local model failed: {exc!r}")
                    self._forget(generation)
                gone.append(generation)
                generation.on_end(exc)
                continue
            gone.append(generation)
        return gone

    def _forget(self, generation: Generation) -> None:
        """Empty the slot of a reply whose memory is in an unknown state (its admission failed)."""
        slot = generation.slot
        if slot is not None:
            self._empty(slot)
            slot.generation = None
            generation.slot = None

    def _tell_places(self) -> None:
        for position, generation in enumerate(self.waiting, start=1):
            if generation.position != position:
                generation.position = position
                generation.on_queued(position, self._expected_wait(position))

    # --- Prompts ---------------------------------------------------------------------
    def _tokens(self, messages: list[dict]) -> list[int]:
        rendered = self._formatter(messages=messages)
        return self._model.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def _prompt(self, generation: Generation) -> list[int]:
        """The reply's prompt in tokens, its oldest turns left out until it fits the history budget."""
        if generation.prompt:
            return generation.prompt
        messages = generation.messages
        tokens = self._tokens(messages)
        if len(tokens) > self.prompt_limit:
            messages, tokens = self._fit(messages, len(tokens))
            generation.dropped_turns = len(generation.messages) - len(messages)
        if len(tokens) >= self.context:
            raise ResponderError(
                f"The prompt has {len(tokens)} tokens; a sequence holds {self.context} (VOICE_LLM_CONTEXT).",
                code="llm_context",
                public_message="The question is too long for the language model.",
            )
        first = 0
        if messages and messages[0].get("role") == "system":
            generation.system_tokens = reuse.common_prefix(self._tokens(messages[:1]), tokens)
            first = 1
        opening = messages[: first + 1]
        generation.opening_tokens = (
            reuse.common_prefix(self._tokens(opening), tokens) if len(opening) < len(messages) else len(tokens)
        )
        generation.prompt = tokens
        return tokens

    def _fit(self, messages: list[dict], total: int) -> tuple[list[dict], list[int]]:
        """``messages`` without the fewest oldest turns that bring its prompt within the budget, and its tokens.

        Exactly the fewest: the next turn's prompt must keep what this one kept, or its memory no longer
        lines up. Tokenizing a whole prompt takes milliseconds, so the count is guessed from each message's
        own tokens (remembered from earlier turns) and then checked, a prompt or two either side.
        """
        shorter = [messages]
        while (less := drop_oldest_turn(shorter[-1])) is not None:
            shorter.append(less)
        sizes = {id(m): self._content_tokens(m.get("content") or "") for m in messages}
        # A message's role and delimiters, on the high side, so the guess leaves out too few rather than too many.
        markup = 1 + max(0, total - sum(sizes.values())) / len(messages)
        guess = 0
        while guess + 1 < len(shorter) and total > self.prompt_limit:
            kept = {id(m) for m in shorter[guess + 1]}
            total -= sum(sizes[id(m)] + markup for m in shorter[guess] if id(m) not in kept)
            guess += 1
        fitting: dict[int, list[int]] = {}

        def fits(index: int) -> bool:
            fitting[index] = self._tokens(shorter[index])
            return len(fitting[index]) <= self.prompt_limit

        if fits(guess):
            while guess > 0 and fits(guess - 1):
                guess -= 1
        else:
            while guess + 1 < len(shorter) and not fits(guess + 1):
                guess += 1
            guess = min(guess + 1, len(shorter) - 1)
        return shorter[guess], fitting.get(guess) or self._tokens(shorter[guess])

    def _content_tokens(self, text: str) -> int:
        count = self._token_counts.get(text)
        if count is None:
            count = len(self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False))
            if len(self._token_counts) >= TOKEN_COUNTS_KEPT:
                self._token_counts.pop(next(iter(self._token_counts)))
            self._token_counts[text] = count
        return count

    def _plan(self, held: list[int], prompt: list[int]) -> reuse.Reuse:
        return reuse.plan(held, prompt, shift=self._can_shift)

    # --- Slots and saved memory ------------------------------------------------------
    def _seat(self, generation: Generation) -> bool:
        """Give ``generation`` a slot, with as much of its prompt in memory as can be had; False if none is free."""
        idle = [slot for slot in self.slots if slot.generation is None]
        if not idle:
            return False
        prompt, system = generation.prompt, generation.system_tokens
        plans = {slot: self._plan(slot.tokens, prompt) for slot in idle}
        best = max(idle, key=lambda slot: plans[slot].tokens)
        # Every conversation shares the system prompt, and questions often begin alike ("How long does it take
        # to ..."): a conversation's own memory holds its whole first message. A slot taken on a few words in
        # common would evict another conversation, whose next turn must then restore its memory or read it again.
        own = generation.opening_tokens
        found = self.states.take_best(prompt, self._plan, at_least=max(plans[best].tokens, own - 1))
        if found is None and plans[best].tokens >= own:
            self._save(best, plans[best], system)
            self._assign(generation, best, plans[best], SLOT)
            return True
        # Not in a slot: the least recently used one (an empty one first) is taken, its memory saved.
        slot = next((s for s in idle if not s.tokens), None) or min(idle, key=lambda s: s.last_used)
        plan, memory = plans[slot], COLD
        self._save(slot, plan, system)
        if found is not None:
            restored = self._restore(slot, found[0])
            plan, memory = (found[1], RESTORED) if restored else (reuse.Reuse(0), COLD)
        if not slot.tokens and self._restore_system_prompt(slot, prompt):
            plan = self._plan(slot.tokens, prompt)
        self._assign(generation, slot, plan, memory)
        return True

    def _assign(self, generation: Generation, slot: Slot, plan: reuse.Reuse, memory: str) -> None:
        llama, mem, seq = self._llama, self._ctx.memory, slot.seq_id
        if plan.gap:  # the oldest turns left the prompt: out of memory too (the rest keeps its positions)
            end = plan.prefix + plan.gap
            if llama.llama_memory_seq_rm(mem, seq, slot.positions[plan.prefix], slot.positions[end - 1] + 1):
                slot.drop(plan.prefix, end)
                generation.shifted = plan.gap
            else:
                plan = reuse.Reuse(plan.prefix)
        keep = min(plan.tokens, len(generation.prompt) - 1)  # decode at least one token: its logits start the reply
        if keep < len(slot.tokens) and not llama.llama_memory_seq_rm(mem, seq, slot.positions[keep], -1):
            keep = 0
            self._empty(slot)
        slot.drop(keep)
        if slot.next_position + len(generation.prompt) - keep + generation.max_tokens >= self._position_limit:
            self._close_gaps(slot)
        slot.generation = generation
        slot.last_used = time.monotonic()
        generation.slot = slot
        generation.pending = generation.prompt[keep:]
        generation.reused = keep
        # A short prompt is due now; a long one (a history read once) by when it could be read alone.
        long = len(generation.pending) > 2 * self.prefill_chunk
        reading = len(generation.pending) * self._prompt_seconds
        generation.prompt_due = generation.submitted_at + (reading if long else 0.0)
        if long:  # a history read again: the listener is told it takes a while (place 0: being read)
            self._tell_progress(generation, force=True)
        generation.memory = memory
        generation.position = 0
        generation.admitted_at = time.monotonic()
        self._samplers[slot.seq_id] = self._sampler(generation)
        self.events(f"memory_{memory}", 1)
        self.events("prompt_tokens_reused", keep)
        self.events("prompt_tokens_read", len(generation.pending))

    def _empty(self, slot: Slot) -> None:
        """Clear ``slot``'s sequence, memory and tokens both."""
        self._llama.llama_memory_seq_rm(self._ctx.memory, slot.seq_id, -1, -1)
        slot.clear()

    def _close_gaps(self, slot: Slot) -> None:
        """Move ``slot``'s tokens back over the gaps dropped turns left: its positions near the model's limit.

        Done at the next decode (``shift_pending``), for the whole context at once: rare, and costly.
        """
        positions = slot.positions
        for index, position in enumerate(positions):
            if position != index:  # a gap before it: it and every later token move back by its width
                self._llama.llama_memory_seq_add(self._ctx.memory, slot.seq_id, position, -1, index - position)
                positions[index:] = [p + index - position for p in positions[index:]]
                slot.shift_pending = True
        if slot.shift_pending:
            self.events("key_shifts", 1)

    def _save(self, slot: Slot, plan: reuse.Reuse, system: int) -> None:
        """Keep the memory of the conversation leaving ``slot``: what the next prompt (``plan``) will not keep.

        Not when there is little of it, nor when the slot holds mostly the next prompt's own conversation
        (what goes is then a reply's unheard end, or turns past the budget).
        """
        lost = len(slot.tokens) - plan.tokens - plan.gap
        if lost < WORTH_SAVING or 2 * (plan.tokens - system) >= len(slot.tokens) - system:
            return
        if not self.states.fits(self._llama.llama_state_seq_get_size(self._ctx.ctx, slot.seq_id)):
            return  # no store, or a memory larger than the whole store
        if slot.shift_pending:  # its keys are not moved yet: a copy now would be wrong
            self._warn_once("shift", "A conversation's memory was not saved: a context shift was pending.")
            return
        state = self._read_state(slot)
        if state is None:
            self.events("state_failures", 1)
            self._warn_once("save", "Saving a conversation's memory failed; it will be read again when needed.")
            return
        evicted = self.states.evicted
        self.states.put(state)
        self.events("states_saved", 1)
        self.events("states_evicted", self.states.evicted - evicted)
        self._tell_store()

    def _tell_store(self) -> None:
        self.events("state_bytes", self.states.used_bytes)
        files = self.states.files
        if files is not None:
            self.events("state_file_bytes", files.used_bytes)
            self.events("state_failures", files.failures - self._file_failures_told)
            self._file_failures_told = files.failures

    def _read_state(self, slot: Slot) -> SavedState | None:
        llama, ctx, seq = self._llama, self._ctx.ctx, slot.seq_id
        size = llama.llama_state_seq_get_size(ctx, seq)
        data = (ctypes.c_uint8 * size)()
        if llama.llama_state_seq_get_data(ctx, data, size, seq) != size:
            return None
        return SavedState(list(slot.tokens), data, list(slot.positions))

    def _restore(self, slot: Slot, state: SavedState, conversation: bool = True) -> bool:
        """Put ``state`` into ``slot``'s sequence; on failure the slot is left empty (and it is said once).

        ``conversation``: a conversation's saved memory, whose restores /metrics counts and times (not the
        system prompt's copy, which would skew their mean cost).
        """
        started = time.perf_counter()
        data = state.data
        if not isinstance(data, ctypes.Array):  # bytes (read back from elsewhere): llama.cpp takes a ctypes buffer
            data = (ctypes.c_uint8 * state.size).from_buffer_copy(data)
        done = self._llama.llama_state_seq_set_data(self._ctx.ctx, data, state.size, slot.seq_id)
        if done != state.size:
            self._empty(slot)
            self.events("state_failures", 1)
            self._warn_once("restore", "Restoring a conversation's memory failed; its history is read again.")
            return False
        slot.hold(state.tokens, state.positions)
        if conversation:
            self.events("state_restore_seconds", time.perf_counter() - started)
            self._tell_store()
        return True

    def _restore_system_prompt(self, slot: Slot, prompt: list[int]) -> bool:
        system = self._system_state
        if system is None or prompt[: len(system.tokens)] != system.tokens or len(system.tokens) >= len(prompt):
            return False
        return self._restore(slot, system, conversation=False)

    def _keep_system_prompt(self, generation: Generation) -> None:
        """Copy the system prompt's memory once it is read, for slots that start empty. After a step."""
        slot, length = generation.slot, generation.system_tokens
        if not length or len(slot.tokens) != length or slot.shift_pending:
            return
        if self._system_state is not None and self._system_state.tokens == slot.tokens:
            return
        self._system_state = self._read_state(slot)

    def _tell_progress(self, generation: Generation, force: bool = False) -> None:
        """A long prompt is being read: say how long it may still take, every ``progress_every`` seconds.

        News keeps a reply alive: the pipeline's first-token timeout counts from the last piece, so a
        history read slowly among many others is waited for, not failed.
        """
        now = time.monotonic()
        if force or now - generation.told_at >= self.progress_every:
            generation.told_at = now
            # Its own tokens, and those of the long prompts due before it.
            ahead = sum(
                len(s.generation.pending)
                for s in self.slots
                if s.generation and s.generation.told_at and s.generation.prompt_due < generation.prompt_due
            )
            generation.on_queued(0, round((ahead + len(generation.pending)) * self._prompt_seconds, 1))

    def _warn_once(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            logger.warning(message)

    def _sampler(self, generation: Generation):
        from llama_cpp import _internals

        old = self._samplers.pop(generation.slot.seq_id, None)
        if old is not None:
            old.close()
        sampler = _internals.LlamaSampler()
        if generation.ignore_end:
            sampler.add_logit_bias(self._model.n_vocab(), dict.fromkeys(self._end_tokens, float("-inf")))
        if generation.temperature <= 0:
            sampler.add_greedy()
        else:
            # llama-cpp-python's own defaults for chat completions.
            sampler.add_top_k(40)
            sampler.add_top_p(0.95, 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(generation.temperature)
            sampler.add_dist(generation.seed)
        generation.text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return sampler

    # --- Steps -----------------------------------------------------------------------
    def _due_work(self, now: float) -> tuple[list[Generation], float | None]:
        """The replies to advance at this step, and when the next paused one falls due. Lock held.

        A reply that is writing is due when its listener needs more text; a prompt by ``prompt_due``. A
        long prompt not yet due is read in steps of its own when nothing else is due, so the steps that
        carry other replies' next words stay short.
        """
        work, ahead, wake_at = [], [], None
        for slot in self.slots:
            generation = slot.generation
            if generation is None:
                continue
            due = generation.prompt_due if generation.pending else generation.due()
            if due <= now:
                work.append(generation)
            elif generation.pending:
                ahead.append(generation)
            else:
                wake_at = due if wake_at is None else min(wake_at, due)
        if not work and ahead:
            work = [min(ahead, key=lambda generation: generation.prompt_due)]
        return work, wake_at

    def _step_on_a_core(self, work: list[Generation]) -> None:
        if self.cores is None:
            self._step(work)
            return
        # Due as its most urgent reply: a new reply's short prompt comes before any later sentence.
        self.cores.acquire(min((g.prompt_due if g.pending else g.due()) for g in work))
        # A core nothing else wants gives the step a second thread: about 1.7 times as fast.
        spare = self.cores.try_acquire_spare()
        try:
            self._use_threads(self.threads + spare)
            self._step(work)
        finally:
            self.cores.release()
            if spare:
                self.cores.release()

    def _use_threads(self, threads: int) -> None:
        if threads != self._threads_now:
            self._llama.llama_set_n_threads(self._ctx.ctx, threads, threads)
            self._threads_now = threads

    def _prompt_slices(self, writing: int, joining: list[Generation]) -> list[tuple[Generation, list[int]]]:
        """What of each joining reply's prompt this step reads: shortest first, ``prefill_chunk`` tokens at most.

        On a CPU a step costs about the same per token whatever its size (SmolLM2-135M, one thread: about
        10 ms), so reading a long prompt in small pieces costs it little, and bounds the wait of every
        other reply's next token, and of a new reply's first, to one short step. A short prompt goes
        before a long one's tail.
        """
        room = min(self.batch_tokens - writing, self.prefill_chunk)
        slices = []
        for generation in sorted(joining, key=lambda g: len(g.pending)):
            if room <= 0:
                break
            take = room
            if self._system_state is None and len(generation.slot.tokens) < generation.system_tokens:
                # Stop at the end of the system prompt once, to copy its memory for empty slots.
                take = min(take, generation.system_tokens - len(generation.slot.tokens))
            piece = generation.pending[:take]
            room -= len(piece)
            slices.append((generation, piece))
        return slices

    def _step(self, work: list[Generation]) -> None:
        """Decode one batch: a token of each writing reply, then a bounded slice of the prompts."""
        batch = self._batch.batch
        batch.n_tokens = 0
        fed: list[tuple[Generation, list[int], int | None]] = []  # (reply, tokens, batch index of its logits)

        def add(generation: Generation, tokens: list[int], wants_logits: bool) -> None:
            slot = generation.slot
            start = batch.n_tokens
            for offset, token in enumerate(tokens):
                i = start + offset
                batch.token[i] = token
                batch.pos[i] = slot.next_position + offset
                batch.seq_id[i][0] = slot.seq_id
                batch.n_seq_id[i] = 1
                batch.logits[i] = False
            batch.n_tokens = start + len(tokens)
            index = None
            if wants_logits:
                index = batch.n_tokens - 1
                batch.logits[index] = True
            fed.append((generation, tokens, index))

        writing = [g for g in work if not g.pending and g.next_token is not None]
        for generation in writing:
            add(generation, [generation.next_token], True)
        for generation, piece in self._prompt_slices(len(writing), [g for g in work if g.pending]):
            add(generation, piece, len(piece) == len(generation.pending))
        if not fed:
            return
        started = time.perf_counter()
        code = self._llama.llama_decode(self._ctx.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        self._time_prompt_reading(batch.n_tokens, len(writing), time.perf_counter() - started)
        self.steps += 1
        for slot in self.slots:  # a decode first applies every sequence's pending shift
            slot.shift_pending = False
        vocab = self._model
        finished: list[Generation] = []
        for generation, tokens, index in fed:
            slot = generation.slot
            slot.extend(tokens)
            if generation.pending:
                del generation.pending[: len(tokens)]
                self._keep_system_prompt(generation)
            generation.next_token = None
            if index is None:
                continue
            token = self._samplers[slot.seq_id].sample(self._ctx, index)
            if generation.stopped:
                continue
            if generation.first_token_at is None:
                generation.first_token_at = time.monotonic()
                self.events("first_token_seconds", generation.first_token_at - generation.submitted_at)
            if self._llama.llama_vocab_is_eog(vocab.vocab, token):
                finished.append(generation)
                continue
            generation.produced += 1
            text = generation.text_decoder.decode(vocab.token_to_piece(token, special=False).rstrip(b"\0"))
            if text:
                generation.on_text(text)
            full = len(slot.tokens) + 1 >= self.context or slot.next_position + 1 >= self._position_limit
            if generation.produced >= generation.max_tokens or full:
                finished.append(generation)
            else:
                generation.next_token = token
        with self._changed:
            for generation in finished:
                self._end(generation, None)
        # Every long prompt still to read hears how it goes, the ones waiting behind others' too.
        reading = [s.generation for s in self.slots if s.generation and s.generation.pending and s.generation.told_at]
        for generation in reading:
            self._tell_progress(generation)

    def _time_prompt_reading(self, tokens: int, writing: int, seconds: float) -> None:
        """Learn what a prompt token costs here, from steps that were mostly prompt, on one thread.

        A long prompt's deadline is the time it would take alone: too slow a guess lets it wait behind
        others longer than it should, too fast a one has it crowd them.
        """
        if tokens - writing < max(TIMED_PROMPT_TOKENS, 2 * writing) or self._threads_now != 1:
            return
        self._prompt_seconds = 0.8 * self._prompt_seconds + 0.2 * seconds / tokens

    def _end(self, generation: Generation, error: BaseException | None, forget: bool = False) -> None:
        """The reply leaves its slot; the slot keeps its tokens for the conversation's next turn. Lock held."""
        slot = generation.slot
        if slot is not None and slot.generation is generation:
            slot.generation = None
            slot.last_used = time.monotonic()
            if forget:  # after a failed decode its memory is unknown
                self._empty(slot)
            held = time.monotonic() - (generation.admitted_at or generation.submitted_at)
            self._lifetime = held if self._lifetime is None else 0.8 * self._lifetime + 0.2 * held
        generation.slot = None
        generation.on_end(error)

    def _expected_wait(self, position: int) -> float | None:
        """Seconds until a slot is likely free for the reply at ``position`` in line."""
        if self._lifetime is None:
            return None
        # Slots come free at about sequences / lifetime a second.
        return round(self._lifetime * position / self.sequences, 1)
