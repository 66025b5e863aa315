"""Replies whose producer is gone, finalized so that nothing stays "streaming".

A reply is abandoned when its heartbeat is older than VOICE_REPLY_STALE_AFTER
seconds (or it was never claimed in that time), or when it was produced on this
machine by a process that no longer exists (a crash, seen at once on restart).
It is stored as ``interrupted`` with the text it had saved, and every tab of
its conversation is told. Every server and worker process does this
periodically and at start-up; ``manage.py finalize_replies`` does it on demand.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import protocol
from .models import Conversation, Message
from .publishing import GroupPublisher

logger = logging.getLogger(__name__)

GONE_CODE = "producer_gone"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def producer_is_dead(produced_by: str) -> bool:
    """Whether ``produced_by`` ("kind:host:pid") names a process of this machine that is gone."""
    parts = produced_by.split(":")
    if len(parts) != 3 or parts[1] != socket.gethostname() or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    return pid != os.getpid() and not process_exists(pid)


def abandoned_replies(stale_after: float | None = None, everything: bool = False) -> list[Message]:
    """Streaming replies nobody produces any more. Blocking (database)."""
    streaming = Message.objects.filter(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
    if everything:
        return list(streaming)
    stale = stale_after if stale_after is not None else settings.VOICE_REPLY_STALE_AFTER
    cutoff = timezone.now() - timedelta(seconds=stale)
    found = {
        reply.pk: reply
        for reply in streaming.filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff))
    }
    here = streaming.filter(produced_by__contains=f":{socket.gethostname()}:").exclude(pk__in=found)
    for reply in here:
        if producer_is_dead(reply.produced_by):
            found[reply.pk] = reply
    return list(found.values())


def finalize_abandoned(stale_after: float | None = None, everything: bool = False) -> list[Message]:
    """Store abandoned replies as interrupted, with the text they had; returns those finalized here."""
    finalized = []
    for reply in abandoned_replies(stale_after, everything):
        detail = f"The process producing this reply ({reply.produced_by or 'none yet'}) stopped before it ended."
        changed = Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING).update(
            status=Message.Status.INTERRUPTED, error_code=GONE_CODE, error=detail
        )
        if changed:  # another process may have finalized it first
            reply.status, reply.error_code, reply.error = Message.Status.INTERRUPTED, GONE_CODE, detail
            logger.warning("Finalized reply %s: %s", reply.pk, detail)
            finalized.append(reply)
    return finalized


async def afinalize_abandoned(channel_layer, stale_after: float | None = None) -> list[Message]:
    """``finalize_abandoned``, then tell each reply's conversation."""
    finalized = await database_sync_to_async(finalize_abandoned)(stale_after)
    for reply in finalized:
        publisher = GroupPublisher(channel_layer, Conversation(pk=reply.conversation_id).group_name)
        await publisher.try_send(protocol.StoredMessage.of(reply))
        await publisher.try_send(protocol.ReplyDone(reply.pk, reply.status, {}))
    return finalized
