from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.views.decorators.http import require_GET, require_POST
from werkzeug.http import parse_range_header

from . import audio, ratelimit
from .forms import ConversationSettingsForm, ConversationTitleForm
from .models import Conversation, Message
from .tts import TTSError, Voice, get_engine

# Offered by the page's speed picker (any value from 0.5 to 2 is accepted).
SPEEDS = (0.75, 1.0, 1.25, 1.5, 2.0)
# Conversations in the sidebar, and found by a search.
LISTED = 100
# Messages a reconnecting page is sent at a time (``?after=``); it asks again while there are more.
CATCH_UP_MESSAGES = 200


def _voices() -> list[Voice]:
    try:
        return get_engine().voices()
    except TTSError:
        return []  # the page still works; replies report audio_failed


def _owned(request: HttpRequest, pk: int) -> Conversation:
    return get_object_or_404(Conversation, pk=pk, owner=request.user)


# --- The conversation list ------------------------------------------------------
def date_groups(conversations: Iterable[Conversation], today: datetime.date) -> list[tuple[str, list[Conversation]]]:
    """Conversations (newest first) under "Today", "Yesterday", "Previous 7 days", … then one heading a month."""
    groups: list[tuple[str, list[Conversation]]] = []
    for conversation in conversations:
        day = timezone.localdate(conversation.updated_at)
        age = (today - day).days
        if age <= 0:
            label = "Today"
        elif age == 1:
            label = "Yesterday"
        elif age < 7:
            label = "Previous 7 days"
        elif age < 30:
            label = "Previous 30 days"
        else:
            label = format_date(day, "F Y")
        if not groups or groups[-1][0] != label:
            groups.append((label, []))
        groups[-1][1].append(conversation)
    return groups


def _search(request: HttpRequest, query: str) -> QuerySet[Conversation]:
    conversations = request.user.conversations.all()
    if query:
        # In the title, or anywhere in what was said: only the caller's own
        # messages are scanned, never every user's.
        said = Message.objects.filter(conversation__owner=request.user, text__icontains=query)
        conversations = conversations.filter(Q(title__icontains=query) | Q(pk__in=said.values("conversation_id")))
    return conversations[:LISTED]


def _refused(status: int, code: str, message: str) -> JsonResponse:
    """A request the page may not make: a stable code and a sentence for people."""
    return JsonResponse({"code": code, "message": message}, status=status)


@login_required
@require_GET
def conversation_list(request: HttpRequest) -> JsonResponse:
    """The sidebar's conversations, grouped by date; ``?q=`` searches titles and messages.

    Queries are at most ``VOICE_SEARCH_MAX_CHARS`` long (400 ``query_too_long``),
    and a user may list or search ``VOICE_SEARCH_RATE_LIMIT`` times a minute
    (429 ``rate_limited``).
    """
    query = request.GET.get("q", "").strip()
    longest = settings.VOICE_SEARCH_MAX_CHARS
    if len(query) > longest:
        return _refused(400, "query_too_long", f"Search for at most {longest} characters.")
    limit = settings.VOICE_SEARCH_RATE_LIMIT
    if not ratelimit.allow(f"search:{request.user.pk}", limit):
        response = _refused(
            429, "rate_limited", f"That is more than {limit} searches in a minute. Wait a moment, then search again."
        )
        response["Retry-After"] = str(ratelimit.WINDOW)
        return response
    groups = date_groups(_search(request, query), timezone.localdate())
    return JsonResponse(
        {
            "query": query,
            "groups": [
                {
                    "label": label,
                    "conversations": [
                        {"id": c.pk, "title": str(c), "url": c.get_absolute_url()} for c in conversations
                    ],
                }
                for label, conversations in groups
            ],
        }
    )


# --- Pages ------------------------------------------------------------------------
def _numbered(conversation: Conversation, messages: list[Message]) -> list[Message]:
    """Number ``messages`` (oldest first) within their role over the whole conversation, not the page.

    "Copy reply 3": every button gets a name of its own, the same whichever page shows it.
    """
    numbers = Counter()
    if messages:
        earlier = conversation.messages.filter(pk__lt=messages[0].pk).order_by().values_list("role")
        numbers.update(dict(earlier.annotate(Count("pk"))))
    for message in messages:
        numbers[message.role] += 1
        message.number = numbers[message.role]
    return messages


def _message_page(conversation: Conversation, before: int | None = None) -> tuple[list[Message], bool]:
    """The newest ``VOICE_PAGE_MESSAGES`` messages (older than ``before``), oldest first, numbered; and whether
    older ones exist. 0: every message."""
    size = settings.VOICE_PAGE_MESSAGES
    messages = conversation.messages.order_by("-pk")
    if before is not None:
        messages = messages.filter(pk__lt=before)
    newest = list(messages[: size + 1] if size > 0 else messages)
    has_more = size > 0 and len(newest) > size
    return _numbered(conversation, newest[:size][::-1] if has_more else newest[::-1]), has_more


def _chat_page(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    # Only the newest page: older messages load as the reader scrolls up to them.
    messages, has_more = _message_page(conversation) if conversation else ([], False)
    context = {
        "voices": _voices(),
        "speeds": SPEEDS,
        "current_voice": conversation.voice if conversation else "",
        "current_speed": conversation.speed if conversation else 1.0,
        "conversation": conversation,
        "conversation_groups": date_groups(_search(request, ""), timezone.localdate()),
        "messages": messages,
        "has_more_messages": has_more,
        "search_max_chars": settings.VOICE_SEARCH_MAX_CHARS,
        # The markdown of each reply, for highlighting the sentence being spoken.
        "reply_sources": {m.pk: m.text for m in messages if m.role == Message.Role.ASSISTANT},
        "max_query_chars": settings.VOICE_MAX_QUERY_CHARS,
        "title_form": ConversationTitleForm(instance=conversation),
    }
    return render(request, "voice/chat.html", context)


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    latest = request.user.conversations.first()
    if latest is not None:
        return redirect(latest)
    return _chat_page(request, None)


@login_required
@require_GET
def new_conversation(request: HttpRequest) -> HttpResponse:
    return _chat_page(request, None)


@login_required
@require_GET
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _chat_page(request, _owned(request, pk))


# --- Changing conversations ---------------------------------------------------------
@login_required
@require_POST
def create_conversation(request: HttpRequest) -> JsonResponse:
    """Called by the page when the first query of a new conversation is sent."""
    limit = settings.VOICE_MAX_CONVERSATIONS
    if limit and request.user.conversations.count() >= limit:
        message = f"You have {limit} conversations, the most one account may keep. Delete one to start another."
        return _refused(403, "too_many_conversations", message)
    form = ConversationSettingsForm(request.POST or {"voice": "", "speed": 1.0})
    if not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    conversation = form.save(commit=False)
    conversation.owner = request.user
    conversation.save()
    return JsonResponse({"id": conversation.pk, "url": conversation.get_absolute_url()}, status=201)


@login_required
@require_POST
def conversation_settings(request: HttpRequest, pk: int) -> JsonResponse:
    conversation = _owned(request, pk)
    form = ConversationSettingsForm(request.POST, instance=conversation)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    form.save()
    return JsonResponse({"voice": conversation.voice, "speed": conversation.speed})


@login_required
@require_POST
def rename_conversation(request: HttpRequest, pk: int) -> JsonResponse:
    form = ConversationTitleForm(request.POST, instance=_owned(request, pk))
    if not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    conversation = form.save()
    return JsonResponse({"id": conversation.pk, "title": str(conversation)})


@login_required
@require_POST
def delete_conversation(request: HttpRequest, pk: int) -> HttpResponse:
    """A plain form post from the page's confirmation dialog; back to the latest conversation."""
    _owned(request, pk).delete()  # its messages and their audio rows go with it
    return redirect("voice:home")


# --- Data for the page ----------------------------------------------------------------
@login_required
@require_GET
def conversation_messages(request: HttpRequest, pk: int) -> JsonResponse:
    """What changed while a page was disconnected: messages after ``?after=<id>`` (``CATCH_UP_MESSAGES`` at most,
    oldest first, and ``has_more`` if there are newer ones still), and any not finished.

    ``?before=<id>`` instead: the page of messages before that one (``VOICE_PAGE_MESSAGES``, oldest first,
    each with its ``number`` within its role), and ``has_more`` if there are older ones still.
    """
    conversation = _owned(request, pk)
    if "before" in request.GET:
        try:
            before = int(request.GET["before"])
        except ValueError:
            return JsonResponse({"errors": {"before": ["A message id."]}}, status=400)
        page, has_more = _message_page(conversation, before)
        return JsonResponse(
            {
                "messages": [{**message.as_event_payload(), "number": message.number} for message in page],
                "has_more": has_more,
            }
        )
    try:
        after = int(request.GET["after"])
    except (KeyError, ValueError):
        return JsonResponse({"errors": {"after": ["A message id (or before=<id>)."]}}, status=400)
    # A page at a time, as ``before`` is: a long conversation is never sent whole.
    newer = list(conversation.messages.filter(pk__gt=after).order_by("pk")[: CATCH_UP_MESSAGES + 1])
    unfinished = list(conversation.messages.filter(pk__lte=after, status=Message.Status.STREAMING).order_by("pk"))
    return JsonResponse(
        {
            "messages": [message.as_event_payload() for message in unfinished + newer[:CATCH_UP_MESSAGES]],
            "has_more": len(newer) > CATCH_UP_MESSAGES,
        }
    )


# --- Stored audio, with byte ranges ------------------------------------------------------
@login_required
@require_GET
def message_audio(request: HttpRequest, pk: int) -> HttpResponseBase:
    """A message's stored audio (a reply's speech, a spoken query's recording).

    For the conversation's owner and for users allowed to view messages (the
    admin's ``voice.view_message``; being staff is not enough); 404 for anyone
    else. Byte ranges are served, so that players can seek.
    """
    messages = Message.objects.select_related("conversation")
    if not request.user.has_perm("voice.view_message"):
        messages = messages.filter(conversation__owner=request.user)
    message = get_object_or_404(messages, pk=pk)
    if not message.audio:
        raise Http404("This message has no audio.")
    content_type = audio.CONTENT_TYPES.get(message.audio_format, "application/octet-stream")
    response = ranged_file_response(request, message.audio, content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one ``(start, stop)`` a Range header asks of ``size`` bytes; None: send it all.

    Werkzeug parses the header. Raises ValueError when it cannot be satisfied
    (malformed, or past the end): that is a 416. Several ranges get the whole
    file, as RFC 9110 allows, rather than a multipart body no player asks for.
    """
    parsed = parse_range_header(header)
    if parsed is None:
        raise ValueError(f"Malformed range {header!r}")
    if parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    start, stop = parsed.ranges[0]
    if stop is None:
        # "500-" is the rest of the file; "-500" its last 500 bytes (all of it, if shorter).
        start, stop = (max(size + start, 0) if start < 0 else start), size
    stop = min(stop, size)
    if not 0 <= start < stop:
        raise ValueError(f"Range {header!r} is not within {size} bytes")
    return start, stop


def _file_slice(file, start: int, stop: int, block: int = 64 * 1024) -> Iterator[bytes]:
    try:
        file.seek(start)
        remaining = stop - start
        while remaining > 0 and (chunk := file.read(min(block, remaining))):
            remaining -= len(chunk)
            yield chunk
    finally:
        file.close()


def ranged_file_response(request: HttpRequest, field_file, content_type: str) -> HttpResponseBase:
    """The file, or the byte range the request asks for (206), or 416."""
    size = field_file.size
    header = request.headers.get("Range", "")
    try:
        span = byte_range(header, size) if header else None
    except ValueError:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response
    if span is None:
        response = FileResponse(field_file.open("rb"), content_type=content_type)
    else:
        start, stop = span
        response = StreamingHttpResponse(
            _file_slice(field_file.open("rb"), start, stop), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        response["Content-Length"] = str(stop - start)
    response["Accept-Ranges"] = "bytes"
    return response
