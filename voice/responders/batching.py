"""Continuous batching: every reply of the local model decoded together, in one llama.cpp context.

One thread owns the context. At each step it builds one batch: the next token
of every reply that is writing and due (its listener will need more text
soon, ``Generation.due``), and a bounded slice of the prompts of replies that
have just joined. A new reply joins at the next step; a stopped one leaves at
once, so barge-in costs at most one step.

The context has ``sequences`` slots of ``context`` tokens of KV memory each,
allocated when the model loads (SmolLM2-135M: about 23 KB a token, so 16 x 2048
tokens is about 750 MB). A slot keeps its tokens when its reply ends: the next
turn of the same conversation finds them (the longest common prefix) and
decodes only what is new. When every slot is writing, a new reply waits in
line and is told its place (``Generation.on_queued``); past ``queue_limit``
waiting replies, new ones are refused (``ResponderBusy``).
"""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..exceptions import ResponderBusy, ResponderError, ResponderUnavailable
from ..scheduling import Cores

logger = logging.getLogger(__name__)

# A slot whose tokens are mostly this prompt's prefix holds the same conversation.
SAME_CONVERSATION_SHARE = 0.5
# How long the thread sleeps at most when no reply is due (a stop or a new reply wakes it at once).
IDLE_WAIT = 0.5


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
    # benchmarks and tests that need a reply of a known length, as llama.cpp's server's ignore_eos.
    ignore_end: bool = False
    # The engine's bookkeeping.
    slot: Slot | None = None
    prompt: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet decoded
    next_token: int | None = None  # sampled, to be decoded at the next step
    produced: int = 0
    reused: int = 0  # prompt tokens found in the slot's memory
    stopped: bool = False
    submitted_at: float = field(default_factory=time.monotonic)
    admitted_at: float | None = None  # when it got its slot
    position: int = 0  # in line; 0 once it has a slot
    text_decoder: codecs.IncrementalDecoder | None = None  # tokens may split a character


@dataclass(eq=False)
class Slot:
    """One sequence of the context and the tokens its KV memory holds."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    generation: Generation | None = None
    last_used: float = 0.0


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


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
        queue_limit: int = 32,
        cores: Cores | None = None,
    ) -> None:
        self.model_path = model_path
        self.sequences = max(1, sequences)
        self.context = context
        self.threads = max(1, threads)
        self.batch_tokens = max(self.sequences + 1, batch_tokens)
        self.queue_limit = queue_limit
        self.cores = cores  # a step runs once it holds one (shared with synthesis, by deadline)
        self.slots = [Slot(seq_id) for seq_id in range(self.sequences)]
        self.waiting: list[Generation] = []
        self.steps = 0  # decode calls so far
        self._lifetime = None  # smoothed seconds a reply holds its slot, for the expected wait
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None

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
        try:
            self._model = _internals.LlamaModel(path_model=self.model_path, params=model_params, verbose=False)
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
        logger.info(
            "Language model %s loaded: %d sequences of %d tokens",
            os.path.basename(self.model_path),
            self.sequences,
            self.context,
        )

    def _free(self) -> None:
        for sampler in self._samplers.values():
            sampler.close()
        self._batch.close()
        self._ctx.close()
        self._model.close()

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._settle()
                if self._closed:
                    for generation in [*self.waiting, *(s.generation for s in self.slots if s.generation)]:
                        generation.stopped = True
                    self._settle()
                    return
                work, wake_at = self._due_work(time.monotonic())
                if not work:
                    timeout = IDLE_WAIT if wake_at is None else max(0.0, min(IDLE_WAIT, wake_at - time.monotonic()))
                    self._changed.wait(timeout)
                    continue
            try:
                self._step_on_a_core(work)
            except Exception as exc:
                logger.exception("Decoding failed; its replies end")
                error = ResponderUnavailable(f"The local model failed: {exc!r}")
                with self._changed:
                    for generation in work:
                        self._end(generation, error, forget=True)

    def _settle(self) -> None:
        """Drop stopped replies, give free slots to waiting ones, tell the rest their place. Lock held."""
        for slot in self.slots:
            if slot.generation is not None and slot.generation.stopped:
                self._end(slot.generation, None)
        for generation in [g for g in self.waiting if g.stopped]:
            self.waiting.remove(generation)
            generation.on_end(None)
        while self.waiting:
            generation = self.waiting[0]
            try:
                prompt = self._prompt(generation)
            except ResponderError as exc:
                self.waiting.pop(0)
                generation.on_end(exc)
                continue
            found = self._slot_for(prompt)
            if found is None:
                break
            self.waiting.pop(0)
            self._assign(generation, *found, prompt)
        for position, generation in enumerate(self.waiting, start=1):
            if generation.position != position:
                generation.position = position
                generation.on_queued(position, self._expected_wait(position))

    def _prompt(self, generation: Generation) -> list[int]:
        if generation.prompt:
            return generation.prompt
        rendered = self._formatter(messages=generation.messages)
        tokens = self._model.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        if len(tokens) >= self.context:
            raise ResponderError(
                f"The prompt has {len(tokens)} tokens; a sequence holds {self.context} (VOICE_LLM_CONTEXT).",
                code="llm_context",
                public_message="The conversation is too long for the language model.",
            )
        generation.prompt = tokens
        return tokens

    def _slot_for(self, prompt: list[int]) -> tuple[Slot, int] | None:
        """The idle slot that holds this conversation, else an empty one, else the least recently used;
        with how many of the prompt's tokens it holds already."""
        shared = {slot: common_prefix(slot.tokens, prompt) for slot in self.slots if slot.generation is None}
        if not shared:
            return None
        best = max(shared, key=shared.get)
        if best.tokens and shared[best] >= SAME_CONVERSATION_SHARE * len(best.tokens):
            return best, shared[best]
        empty = next((slot for slot in shared if not slot.tokens), None)
        if empty is not None:
            return empty, 0
        oldest = min(shared, key=lambda slot: slot.last_used)
        return oldest, shared[oldest]

    def _assign(self, generation: Generation, slot: Slot, keep: int, prompt: list[int]) -> None:
        keep = min(keep, len(prompt) - 1)  # decode at least one token: its logits start the reply
        if not self._llama.llama_memory_seq_rm(self._ctx.memory, slot.seq_id, keep, -1):
            self._llama.llama_memory_seq_rm(self._ctx.memory, slot.seq_id, -1, -1)
            keep = 0
        del slot.tokens[keep:]
        slot.generation = generation
        slot.last_used = time.monotonic()
        generation.slot = slot
        generation.pending = prompt[keep:]
        generation.reused = keep
        generation.position = 0
        generation.admitted_at = time.monotonic()
        self._samplers[slot.seq_id] = self._sampler(generation)

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

    def _due_work(self, now: float) -> tuple[list[Generation], float | None]:
        """The replies to advance at this step, and when the next paused one falls due. Lock held."""
        work, wake_at = [], None
        for slot in self.slots:
            generation = slot.generation
            if generation is None:
                continue
            due = 0.0 if generation.pending else generation.due()
            if due <= now:
                work.append(generation)
            else:
                wake_at = due if wake_at is None else min(wake_at, due)
        return work, wake_at

    def _step_on_a_core(self, work: list[Generation]) -> None:
        if self.cores is None:
            self._step(work)
            return
        # Due as its most urgent reply: a new reply's prompt (0.0) comes before any later sentence.
        self.cores.acquire(min((0.0 if g.pending else g.due()) for g in work))
        try:
            self._step(work)
        finally:
            self.cores.release()

    def _step(self, work: list[Generation]) -> None:
        """Decode one batch: a token of each writing reply, then as much prompt as fits."""
        batch = self._batch.batch
        batch.n_tokens = 0
        fed: list[tuple[Generation, list[int], int | None]] = []  # (reply, tokens, batch index of its logits)

        def add(generation: Generation, tokens: list[int], wants_logits: bool) -> None:
            slot = generation.slot
            start = batch.n_tokens
            for offset, token in enumerate(tokens):
                i = start + offset
                batch.token[i] = token
                batch.pos[i] = len(slot.tokens) + offset
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
        joining = [g for g in work if g.pending]
        for generation in writing:
            add(generation, [generation.next_token], True)
        room = self.batch_tokens - len(writing)
        for generation in joining:
            if room <= 0:
                break
            piece = generation.pending[:room]
            room -= len(piece)
            add(generation, piece, len(piece) == len(generation.pending))
        if not fed:
            return
        code = self._llama.llama_decode(self._ctx.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        self.steps += 1
        vocab = self._model
        finished: list[Generation] = []
        for generation, tokens, index in fed:
            slot = generation.slot
            slot.tokens.extend(tokens)
            if generation.pending:
                del generation.pending[: len(tokens)]
            generation.next_token = None
            if index is None:
                continue
            token = self._samplers[slot.seq_id].sample(self._ctx, index)
            if generation.stopped:
                continue
            if self._llama.llama_vocab_is_eog(vocab.vocab, token):
                finished.append(generation)
                continue
            generation.produced += 1
            text = generation.text_decoder.decode(vocab.token_to_piece(token, special=False).rstrip(b"\0"))
            if text:
                generation.on_text(text)
            if generation.produced >= generation.max_tokens or len(slot.tokens) + 1 >= self.context:
                finished.append(generation)
            else:
                generation.next_token = token
        with self._changed:
            for generation in finished:
                self._end(generation, None)

    def _end(self, generation: Generation, error: BaseException | None, forget: bool = False) -> None:
        """The reply leaves its slot; the slot keeps its tokens for the conversation's next turn. Lock held."""
        slot = generation.slot
        if slot is not None and slot.generation is generation:
            slot.generation = None
            slot.last_used = time.monotonic()
            if forget:  # after a failed decode its memory is unknown
                self._llama.llama_memory_seq_rm(self._ctx.memory, slot.seq_id, -1, -1)
                slot.tokens.clear()
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
