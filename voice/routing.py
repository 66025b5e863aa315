from django.urls import path, re_path

from . import consumers, workers
from .api.consumers import TokenSynthesisConsumer
from .dispatch import WORKER_CHANNEL

websocket_urlpatterns = [
    path("ws/chat/<int:conversation_id>/", consumers.ChatConsumer.as_asgi()),
]

# The speech API's socket: the token is the credential (no cookies, no Origin).
api_websocket_urlpatterns = [
    re_path(r"^v1/ws/(?P<token>[\w-]+)/?$", TokenSynthesisConsumer.as_asgi()),
]

# Background channels, served by `manage.py runworker voice-tts`.
channel_workers = {
    WORKER_CHANNEL: workers.SpeechWorker.as_asgi(),
}
