from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from .models import ApiKey, Conversation, Message, SpeechRequest
from .rendering import render_markdown

LATENCY_FIELDS = ("first_text_ms", "ttfa_ms", "reply_ms", "synthesis_ms", "duration_ms")
# Messages a conversation's transcript shows, the newest: a long conversation's page must still load.
TRANSCRIPT_MESSAGES = 200


class TranscriptStyles:
    """Styles of the transcript and the rendered replies, in the admin's own colours (light and dark)."""

    css = {"all": ["voice/admin.css"]}


@admin.display(description="Audio")
def audio_player(message: Message) -> str:
    if not message.audio_url:
        return "—"
    # Served by voice.views.message_audio, which lets staff through (with byte ranges, so it seeks).
    return format_html('<audio controls preload="none" src="{}"></audio>', message.audio_url)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "message_count", "created_at", "updated_at")
    list_filter = ("created_at", "updated_at")
    search_fields = ("title", "owner__username", "owner__email", "messages__text")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "updated_at", "transcript")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    fieldsets = (
        (None, {"fields": ("title", "owner", ("voice", "speed"), ("created_at", "updated_at"))}),
        ("Transcript", {"fields": ("transcript",)}),
    )
    Media = TranscriptStyles

    @admin.display(description="Messages")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.messages.count()

    @admin.display(description="Transcript")
    def transcript(self, conversation: Conversation) -> SafeString:
        """The conversation as it was said: replies rendered, each with its player, timings and errors."""
        if conversation.pk is None:
            return "—"
        total = conversation.messages.count()
        every_message = reverse("admin:voice_message_changelist") + f"?conversation__id__exact={conversation.pk}"
        newest = reversed(conversation.messages.order_by("-created_at", "-pk")[:TRANSCRIPT_MESSAGES])
        return render_to_string(
            "admin/voice/transcript.html",
            {
                "messages": list(newest),
                "total": total,
                "every_message": every_message,
                "stopped": Message.STOPPED,
            },
        )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("short_text", "conversation", "role", "status", "engine", "ttfa_ms", "duration_ms", "created_at")
    list_filter = ("created_at", "role", "engine", "status", "cut")
    search_fields = ("text", "conversation__owner__username", "conversation__title")
    date_hierarchy = "created_at"
    list_select_related = ("conversation",)
    raw_id_fields = ("conversation", "reply_to")
    readonly_fields = ("rendered", audio_player, *LATENCY_FIELDS, "heard_ms", "created_at", "audio_format")
    fieldsets = (
        (None, {"fields": ("conversation", "role", "status", "cut", "created_at")}),
        ("Text", {"fields": ("rendered", "text")}),
        ("Speech", {"fields": ("engine", "voice", "audio", audio_player, "audio_format", "heard_ms")}),
        ("Latency", {"fields": LATENCY_FIELDS}),
        ("Errors", {"fields": ("error_code", "error")}),
        ("Reasoning", {"fields": ("reasoning",), "classes": ("collapse",)}),
    )
    Media = TranscriptStyles

    @admin.display(description="Text", ordering="text")
    def short_text(self, message: Message) -> str:
        return Truncator(message.text).chars(120) or "—"

    @admin.display(description="As shown")
    def rendered(self, message: Message) -> SafeString:
        if message.role == Message.Role.ASSISTANT:
            return format_html('<div class="markdown">{}</div>', render_markdown(message.text))
        return format_html('<div style="white-space: pre-wrap">{}</div>', message.text)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at", "created_at")
    search_fields = ("name", "user__username", "lookup")
    fields = ("user", "name", "revoked_at")
    raw_id_fields = ("user",)
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # Issue the key here: its plain text is shown this once and never stored.
        key, plain = ApiKey.issue(obj.user, obj.name)
        obj.pk, obj.lookup, obj.hashed = key.pk, key.lookup, key.hashed
        self.message_user(request, f"New API key (copy it now, it is not shown again): {plain}", messages.WARNING)

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        revoked = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} key(s).")


@admin.register(SpeechRequest)
class SpeechRequestAdmin(admin.ModelAdmin):
    list_display = ("created_at", "api", "user", "api_key", "voice", "characters", "duration_ms", "ttfa_ms", "error")
    list_filter = ("api", "created_at", "voice")
    search_fields = ("user__username", "voice", "error")
    date_hierarchy = "created_at"
    list_select_related = ("user", "api_key")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
