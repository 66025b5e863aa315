"""A reply begun from a hands-free turn's early transcript, before the turn is known to be over.

At VOICE_HANDSFREE_EAGER_MS of silence the turn's words are transcribed
(``voice.handsfree.session``); most of the time they are the final words, and
the turn ends a few hundred milliseconds later. A ``Draft`` starts the reply
pipeline on them at once, and keeps its events (text and audio) to itself:
nothing is published and nothing is stored. When the turn ends with the same
words, the reply that answers the stored query takes the draft's events and
goes on from where it is (``ChatReply``), so the first sound is ready sooner;
when the person goes on talking, or the words or the conversation differ, the
draft is dropped and the reply is produced as usual.

A draft never changes what is stored or said: it is used only when the stored
query has exactly its words, the history the model would be told now is the
one it was told, and the voice and speed are the ones it speaks with. A
dropped draft costs its model and synthesis time only (a fraction of a second:
the silence that ends a turn is short). Replies produced by a reply worker
(VOICE_REPLY_DISPATCH=worker) are not drafted: the worker could not take one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from django.conf import settings

from . import pipeline
from .exceptions import ResponderError
from .history import turns_before, turns_until
from .metrics import DRAFTS
from .models import Conversation, Message
from .responders import Turn, get_responder

logger = logging.getLogger(__name__)


class Draft:
    """The events of a reply to ``text``, produced while nobody hears them yet."""

    def __init__(self, conversation: Conversation, text: str, voice: str | None, speed: float) -> None:
        self.conversation = conversation
        self.text = text
        self.voice = voice
        self.speed = speed
        self.history: list[Turn] | None = None  # what the model was told; None: not read (yet, or not settled)
        self.budget: int | None = None  # of the history, in characters (None: the responder takes none)
        self._events: list[pipeline.Event] = []
        self._more = asyncio.Event()
        self._history_read = asyncio.Event()
        self._taken = False  # a reply has it
        self._counted = False  # its outcome is in /metrics
        self.task = asyncio.create_task(self._produce())
        self.task.add_done_callback(_retrieved)

    @classmethod
    def wanted(cls) -> bool:
        """Whether replies are drafted here (VOICE_HANDSFREE_DRAFT_REPLIES; never for reply workers)."""
        return settings.VOICE_HANDSFREE_DRAFT_REPLIES and settings.VOICE_REPLY_DISPATCH != "worker"

    async def take(self, query: Message) -> bool:
        """Whether the reply to the stored ``query`` may be this draft; if so it is the reply's now.

        It may when the model would be told exactly what it was told: the same words, the same
        history (``turns_before`` the stored query, read again), the same voice and speed.
        """
        if not self._taken and not self.task.done():
            reading = asyncio.ensure_future(self._history_read.wait())
            await asyncio.wait([reading, self.task], return_when=asyncio.FIRST_COMPLETED)
            reading.cancel()
        failed = self.task.done() and (self.task.cancelled() or self.task.exception() is not None)
        if self._taken or failed or self.history is None:
            self._drop("unusable")
            return False
        conversation = query.conversation
        fits = (
            query.text == self.text
            and (conversation.voice or None) == self.voice
            and conversation.speed == self.speed
            and (self.budget is None or await _history(query, self.budget) == self.history)
        )
        if not fits:
            self._drop("discarded")
            return False
        self._taken = True
        return True

    def abandon(self) -> None:
        """The turn went on, or ended otherwise: the draft is dropped, unless a reply took it."""
        if not self._taken:
            self._drop("discarded")

    def cancel(self) -> None:
        """Stop it, taken or not (a reply that took it ends, or never starts)."""
        self._drop("discarded")

    async def events(self) -> AsyncIterator[pipeline.Event]:
        """Every event of the reply: those kept so far at once, then each as it comes."""
        self._count("used")
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if self.task.done():
                break
            self._more.clear()
            await self._more.wait()
        if self.task.cancelled():
            raise asyncio.CancelledError  # stopped from elsewhere: the reply is cut short, not complete
        self.task.result()  # a failure surfaces in the reply, as its own would

    def _drop(self, outcome: str) -> None:
        if not self.task.done():
            self.task.cancel()
        self._count(outcome)

    def _count(self, outcome: str) -> None:
        if not self._counted:
            self._counted = True
            DRAFTS.labels(outcome).inc()

    async def _produce(self) -> None:
        try:
            try:
                responder = get_responder()
            except ResponderError as exc:
                self.history = []
                self._keep(pipeline.TextFailed(exc))
                return
            if responder.uses_history:
                self.budget = responder.history_chars()
                self.history = await _settled_history(self.conversation, self.budget)
                if self.history is None:
                    return  # a reply is still being stored: what was heard of it is not known yet
            else:
                self.history = []
            self._history_read.set()
            speaker = pipeline.Speaker(voice=self.voice, speed=self.speed)
            async for event in pipeline.ReplyPipeline(responder, speaker).run(self.text, self.history):
                self._keep(event)
        finally:
            self._history_read.set()
            self._more.set()

    def _keep(self, event: pipeline.Event) -> None:
        self._events.append(event)
        self._more.set()


def _retrieved(task: asyncio.Task) -> None:
    """A draft nobody took may have failed: said in the log, not as an unretrieved exception."""
    if not task.cancelled() and task.exception() is not None:
        logger.info("A drafted reply failed: %r", task.exception())


@database_sync_to_async
def _settled_history(conversation: Conversation, budget_chars: int) -> list[Turn] | None:
    """The conversation's turns so far; None while a reply in it is still being produced."""
    if conversation.messages.filter(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING).exists():
        return None
    return turns_until(conversation, budget_chars=budget_chars)


@database_sync_to_async
def _history(query: Message, budget_chars: int) -> list[Turn]:
    return turns_before(query, budget_chars)
