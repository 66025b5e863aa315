"""What a model is told of the conversation so far.

The earlier turns come from the database, oldest first, cut to the
responder's budget (``BaseResponder.history_chars``, VOICE_LLM_HISTORY_CHARS)
by dropping the oldest; the local model trims them further in its own tokens.
Placeholders and failed replies are left out; an interrupted reply counts as
what the user heard of it, not what was written.
"""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from django.conf import settings

from .models import Conversation, Message
from .responders import Turn

# How long a new reply waits for one it interrupted to be stored.
SETTLE_SECONDS = 1.5
SETTLE_POLL = 0.025


def turns_before(query: Message, budget_chars: int | None = None) -> list[Turn]:
    """The turns before ``query``, within the budget. Blocking (database)."""
    return turns_until(query.conversation, query.pk, budget_chars)


def turns_until(conversation: Conversation, before: int | None = None, budget_chars: int | None = None) -> list[Turn]:
    """The turns of ``conversation`` stored before message ``before`` (None: all), within the budget. Blocking."""
    budget = settings.VOICE_LLM_HISTORY_CHARS if budget_chars is None else budget_chars
    earlier = conversation.messages.order_by("-created_at", "-pk")
    if before is not None:
        earlier = earlier.filter(pk__lt=before)
    turns: list[Turn] = []
    used = 0
    for message in earlier.iterator():
        text = spoken_part(message)
        if not text:
            continue
        if used + len(text) > budget:
            break
        used += len(text)
        turns.append(Turn(role=message.role, text=text))
    turns.reverse()
    # An answer without its question only confuses a model.
    while turns and turns[0].role == Message.Role.ASSISTANT:
        turns.pop(0)
    return turns


def spoken_part(message: Message) -> str:
    """What of a message belongs in the history ("" for nothing)."""
    if message.role == Message.Role.USER:
        return message.text
    if message.status == Message.Status.FAILED:
        return ""
    return message.heard_text.strip()


async def settled_turns_before(query: Message, budget_chars: int | None = None) -> list[Turn]:
    """``turns_before``, once replies this query interrupted have stored what was heard of them.

    An interrupted reply stores itself within milliseconds; a bounded wait
    keeps a producer that died from holding the new reply back.
    """
    # Polled: the interrupted reply may be stored by another process.
    for _attempt in range(round(SETTLE_SECONDS / SETTLE_POLL)):
        turns, settled = await _turns_if_settled(query, budget_chars)
        if settled:
            return turns
        await asyncio.sleep(SETTLE_POLL)
    return await database_sync_to_async(turns_before)(query, budget_chars)


@database_sync_to_async
def _turns_if_settled(query: Message, budget_chars: int | None) -> tuple[list[Turn], bool]:
    """(the turns, True) if no earlier reply is still being stored, else ([], False): one round trip."""
    unsettled = query.conversation.messages.filter(
        pk__lt=query.pk, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
    ).exists()
    return ([], False) if unsettled else (turns_before(query, budget_chars), True)
