from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import audio
from .forms import ConversationSettingsForm
from .models import Conversation, Message
from .tts import TTSError, Voice, get_engine

# Offered by the page's speed picker (any value from 0.5 to 2 is accepted).
SPEEDS = (0.75, 1.0, 1.25, 1.5, 2.0)


def _voices() -> list[Voice]:
    try:
        return get_engine().voices()
    except TTSError:
        return []  # the page still works; replies report audio_failed


def _chat_page(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    context = {
        "voices": _voices(),
        "speeds": SPEEDS,
        "current_voice": conversation.voice if conversation else "",
        "current_speed": conversation.speed if conversation else 1.0,
        "conversation": conversation,
        "conversations": request.user.conversations.all()[:100],
        "messages": conversation.messages.all() if conversation else [],
        "max_query_chars": settings.VOICE_MAX_QUERY_CHARS,
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
@require_POST
def create_conversation(request: HttpRequest) -> JsonResponse:
    """Called by the page when the first query of a new conversation is sent."""
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
    conversation = get_object_or_404(Conversation, pk=pk, owner=request.user)
    form = ConversationSettingsForm(request.POST, instance=conversation)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    form.save()
    return JsonResponse({"voice": conversation.voice, "speed": conversation.speed})


@login_required
@require_GET
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(Conversation, pk=pk, owner=request.user)
    return _chat_page(request, conversation)


@login_required
@require_GET
def message_audio(request: HttpRequest, pk: int) -> FileResponse:
    """A reply's stored audio, for its owner and for staff; 404 for anyone else."""
    messages = Message.objects.select_related("conversation")
    if not request.user.is_staff:
        messages = messages.filter(conversation__owner=request.user)
    message = get_object_or_404(messages, pk=pk)
    if not message.audio:
        raise Http404("This message has no audio.")
    response = FileResponse(
        message.audio.open("rb"),
        content_type=audio.CONTENT_TYPES.get(message.audio_format, "application/octet-stream"),
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response
