import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from . import cutoffs

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
        INTERRUPTED = "interrupted", "Interrupted"
        FAILED = "failed", "Reply failed"

    class Cut(models.TextChoices):
        """Why a reply was ended early by the reply pipeline (voice.cutoffs); blank: it was not."""

        LENGTH = cutoffs.LENGTH, "Reply shortened"
        REPETITION = cutoffs.REPETITION, "Reply stopped: it was repeating itself"

    # A reply in one of these states is over: nothing will change its text.
    FINISHED = (Status.COMPLETE, Status.AUDIO_FAILED, Status.CANCELLED, Status.INTERRUPTED, Status.FAILED)
    # Stopped before its end, by a person (Stop, a new query, a voice over it).
    STOPPED = (Status.INTERRUPTED, Status.CANCELLED)

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # What clients were told (a stable code); the details stay here, for staff.
    error_code = models.CharField(max_length=50, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The query a reply answers.
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
        limit_choices_to={"role": "user"},
    )
    # What a model thought before answering; never spoken, never shown to the user.
    reasoning = models.TextField(blank=True)
    # The sending page's own id for a query, so that a query sent again after a
    # dropped connection is stored once.
    client_id = models.CharField(max_length=64, blank=True)

    # Speech (assistant messages only).
    # Which process produces the reply: claimed once, so that a late worker
    # and a consumer that gave up on it never both produce it.
    produced_by = models.CharField(max_length=200, blank=True)
    # Where to send a cancel for this reply while it is produced (a channel name).
    producer_channel = models.CharField(max_length=200, blank=True)
    # Refreshed while the reply is produced: a stale one means its producer is gone.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    engine = models.CharField(max_length=50, blank=True)
    voice = models.CharField(max_length=100, blank=True)
    audio = models.FileField(upload_to="voice/audio/%Y/%m/", blank=True)
    audio_format = models.CharField(max_length=16, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Each spoken segment: [text_start, text_end, audio_start_ms, audio_end_ms].
    segments = models.JSONField(default=list, blank=True)
    # How much of the audio the asking tab played before the reply was stopped.
    heard_ms = models.PositiveIntegerField(null=True, blank=True)
    # Ended early, at a sentence's end, by the pipeline (its text is what was said): why.
    cut = models.CharField(max_length=16, choices=Cut.choices, blank=True)

    # Latency, measured from the moment the query reached the server.
    first_text_ms = models.PositiveIntegerField("time to first text (ms)", null=True, blank=True)
    ttfa_ms = models.PositiveIntegerField("time to first audio (ms)", null=True, blank=True)
    reply_ms = models.PositiveIntegerField("time to full text (ms)", null=True, blank=True)
    synthesis_ms = models.PositiveIntegerField("total synthesis time (ms)", null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~models.Q(client_id=""),
                name="voice_message_client_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {Truncator(self.text).chars(60)}"

    @property
    def heard_text(self) -> str:
        """The part of the reply the user heard: all of it unless it was cut short.

        Segments whose audio started before ``heard_ms`` count whole (a listener
        who heard half a sentence knows where it was going). Without a
        ``heard_ms``, a reply that was stopped counts up to its last spoken
        segment; one never spoken counts as shown.
        """
        stopped = self.status in (self.Status.INTERRUPTED, self.Status.CANCELLED)
        if not self.segments or (self.heard_ms is None and not stopped):
            return self.text
        heard = self.heard_ms if self.heard_ms is not None else float("inf")
        end = 0
        for _text_start, text_end, audio_start_ms, _audio_end_ms in self.segments:
            if audio_start_ms >= heard:
                break
            end = text_end
        return self.text[:end].rstrip()

    @property
    def audio_url(self) -> str | None:
        if not self.audio:
            return None
        return reverse("voice:message_audio", args=[self.pk])

    def claim(self, producer: str, channel: str = "") -> bool:
        """Atomically become the producer of this reply; False if another process is.

        ``channel`` is where cancels for the reply reach the producer.
        """
        fields = {"produced_by": producer, "producer_channel": channel, "heartbeat_at": timezone.now()}
        unclaimed = type(self).objects.filter(pk=self.pk, produced_by="", status=self.Status.STREAMING)
        claimed = bool(unclaimed.update(**fields))
        if claimed:
            for name, value in fields.items():
                setattr(self, name, value)
        return claimed

    def release(self, producer: str) -> None:
        """Give up a claim, so that another process may produce this reply."""
        type(self).objects.filter(pk=self.pk, produced_by=producer).update(
            produced_by="", producer_channel="", heartbeat_at=None
        )
        self.produced_by = self.producer_channel = ""
        self.heartbeat_at = None

    def as_event_payload(self) -> dict:
        """The message as the wire protocol's `message` event carries it."""
        return {
            "id": self.pk,
            "role": self.role,
            "text": self.text,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "audio_url": self.audio_url,
            "heard_ms": self.heard_ms,
            "client_id": self.client_id or None,
            # A query that was said, not typed (its recording plays from audio_url).
            "is_voice": self.role == self.Role.USER and bool(self.audio),
            "duration_ms": self.duration_ms,
            # [text_start, text_end, audio_start_ms, audio_end_ms] per spoken segment: replays can highlight.
            "segments": self.segments,
            # A reply ended early: "length" or "repetition" ("" if not).
            "cut": self.cut,
        }


class ApiKey(models.Model):
    """A key for the speech API. Only its hash is stored; the key is shown once."""

    PREFIX = "vk_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    hashed = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.PREFIX}{self.lookup}… ({self.user})"

    @staticmethod
    def _hash(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "") -> tuple["ApiKey", str]:
        """A new key and its plain text (not stored anywhere)."""
        lookup = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = cls.objects.create(user=user, name=name, lookup=lookup, hashed=cls._hash(secret))
        return key, f"{cls.PREFIX}{lookup}_{secret}"

    @classmethod
    def authenticate(cls, plain: str) -> "ApiKey | None":
        if not plain.startswith(cls.PREFIX) or "_" not in plain[len(cls.PREFIX) :]:
            return None
        lookup, _, secret = plain[len(cls.PREFIX) :].partition("_")
        key = cls.objects.select_related("user").filter(lookup=lookup, revoked_at=None).first()
        if key is None or not hmac.compare_digest(key.hashed, cls._hash(secret)) or not key.user.is_active:
            return None
        cls.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key


class SpeechToken(models.Model):
    """A single-use ticket for one synthesis over the token WebSocket."""

    token = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE)
    text = models.TextField()
    voice = models.CharField(max_length=100)
    speed = models.FloatField(default=1.0)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token for {self.voice}, {len(self.text)} chars"

    @classmethod
    def redeem(cls, token: str) -> "SpeechToken | None":
        """The token's request, once: None if unknown, used or expired, or if its key or user was revoked since."""
        now = timezone.now()
        # A token is only as good as the credentials it was issued under, checked
        # again now: revoking a key (or deactivating a user) must stop its tokens too.
        still_authorized = (models.Q(api_key=None) | models.Q(api_key__revoked_at=None)) & (
            models.Q(user=None) | models.Q(user__is_active=True)
        )
        if not cls.objects.filter(still_authorized, token=token, used_at=None, expires_at__gt=now).update(used_at=now):
            return None
        return cls.objects.select_related("user", "api_key").get(token=token)


class SpeechRequest(models.Model):
    """One synthesis through the API, for accounting."""

    class Api(models.TextChoices):
        VIVOKA = "vivoka", "Token WebSocket"
        OPENAI = "openai", "OpenAI /v1/audio/speech"

    api = models.CharField(max_length=16, choices=Api.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    voice = models.CharField(max_length=100)
    characters = models.PositiveIntegerField()
    response_format = models.CharField(max_length=16, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    ttfa_ms = models.PositiveIntegerField("time to first audio (ms)", null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.api} {self.voice} {self.characters} chars"


@receiver(post_delete, sender=Message)
def delete_audio_file(sender, instance: Message, **kwargs) -> None:
    """A deleted message takes its audio (the reply's speech, the user's recording) out of storage.

    After the commit: a deletion that is rolled back must not lose the files.
    Deleting a conversation or a user cascades here, message by message.
    """
    if instance.audio:
        storage, name = instance.audio.storage, instance.audio.name
        transaction.on_commit(lambda: storage.delete(name))
