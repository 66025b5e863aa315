from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.text import Truncator

TITLE_CHARS = 80


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=TITLE_CHARS * 2, blank=True)
    # Blank means "the deployment's default" (VOICE_TTS_VOICE).
    voice = models.CharField(max_length=100, blank=True)
    speed = models.FloatField(default=1.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("voice:conversation", args=[self.pk])

    @property
    def group_name(self) -> str:
        """The channel-layer group every open tab of this conversation joins."""
        return f"conversation.{self.pk}"

    def title_from(self, query: str) -> str:
        return Truncator(" ".join(query.split())).chars(TITLE_CHARS)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        AUDIO_FAILED = "audio_failed", "Audio failed"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Reply failed"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Speech (assistant messages only).
    # Which process produces the reply: claimed once, so that a late worker
    # and a consumer that gave up on it never both produce it.
    produced_by = models.CharField(max_length=200, blank=True)
    engine = models.CharField(max_length=50, blank=True)
    voice = models.CharField(max_length=100, blank=True)
    audio = models.FileField(upload_to="voice/audio/%Y/%m/", blank=True)
    audio_format = models.CharField(max_length=16, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    # Latency, measured from the moment the query reached the server.
    ttfa_ms = models.PositiveIntegerField("time to first audio (ms)", null=True, blank=True)
    reply_ms = models.PositiveIntegerField("time to full text (ms)", null=True, blank=True)
    synthesis_ms = models.PositiveIntegerField("total synthesis time (ms)", null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {Truncator(self.text).chars(60)}"

    @property
    def audio_url(self) -> str | None:
        if not self.audio:
            return None
        return reverse("voice:message_audio", args=[self.pk])

    def claim(self, producer: str) -> bool:
        """Atomically become the producer of this reply; False if another process is."""
        claimed = bool(type(self).objects.filter(pk=self.pk, produced_by="").update(produced_by=producer))
        if claimed:
            self.produced_by = producer
        return claimed

    def release(self, producer: str) -> None:
        """Give up a claim, so that another process may produce this reply."""
        type(self).objects.filter(pk=self.pk, produced_by=producer).update(produced_by="")
        self.produced_by = ""

    def as_event_payload(self) -> dict:
        """The message as the wire protocol's `message` event carries it."""
        return {
            "id": self.pk,
            "role": self.role,
            "text": self.text,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "audio_url": self.audio_url,
        }
