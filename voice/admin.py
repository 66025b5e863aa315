from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from .models import ApiKey, Conversation, Message, SpeechRequest

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
