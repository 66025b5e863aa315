from django.contrib import admin
from django.utils.html import format_html

from .models import Conversation, Message

LATENCY_FIELDS = ("ttfa_ms", "reply_ms", "synthesis_ms", "duration_ms")


@admin.display(description="Audio")
def audio_player(message: Message) -> str:
    if not message.audio_url:
        return "—"
    # Served by voice.views.message_audio, which lets staff through.
    return format_html('<audio controls preload="none" src="{}"></audio>', message.audio_url)


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("role", "text", "status", "engine", "voice", audio_player, *LATENCY_FIELDS, "created_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "message_count", "created_at", "updated_at")
    list_filter = ("created_at", "updated_at")
    search_fields = ("title", "owner__username", "owner__email", "messages__text")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "updated_at")
    list_select_related = ("owner",)
    inlines = [MessageInline]

    @admin.display(description="Messages")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.messages.count()


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "conversation", "role", "status", "engine", "ttfa_ms", "duration_ms", "created_at")
    list_filter = ("created_at", "role", "engine", "status")
    search_fields = ("text", "conversation__owner__username", "conversation__title")
    date_hierarchy = "created_at"
    list_select_related = ("conversation",)
    raw_id_fields = ("conversation",)
    readonly_fields = (audio_player, *LATENCY_FIELDS, "created_at", "audio_format")
    fieldsets = (
        (None, {"fields": ("conversation", "role", "text", "status", "error", "created_at")}),
        ("Speech", {"fields": ("engine", "voice", "audio", audio_player, "audio_format")}),
        ("Latency", {"fields": LATENCY_FIELDS}),
    )
