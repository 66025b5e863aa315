from django.urls import re_path

from . import consumers, workers
from .api.consumers import TokenSynthesisConsumer
from .dispatch import WORKER_CHANNEL

# Ids that fit a 64-bit key: a longer one cannot name anything.
ID = r"(?P<conversation_id>[1-9][0-9]{0,17})"

websocket_urlpatterns = [
    re_path(rf"^ws/chat/{ID}/$", consumers.ChatConsumer.as_asgi()),
    # Anything else is refused with a close code, not a server error.
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]

# The speech API's socket: the token is the credential (no cookies, no Origin).
api_websocket_urlpatterns = [
    re_path(r"^v1/ws/(?P<token>[\w-]{1,64})/?$", TokenSynthesisConsumer.as_asgi()),
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]

# Background channels, served by `manage.py runworker voice-replies`.
channel_workers = {
    WORKER_CHANNEL: workers.ReplyWorker.as_asgi(),
}
