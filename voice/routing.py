from django.urls import path

from . import consumers, workers
from .dispatch import WORKER_CHANNEL

websocket_urlpatterns = [
    path("ws/chat/<int:conversation_id>/", consumers.ChatConsumer.as_asgi()),
]

# Background channels, served by `manage.py runworker voice-tts`.
channel_workers = {
    WORKER_CHANNEL: workers.SpeechWorker.as_asgi(),
}
