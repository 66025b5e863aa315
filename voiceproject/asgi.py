"""ASGI entry point: HTTP goes to Django, WebSockets to the voice consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceproject.settings")
# Populate the app registry before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from voice import lifecycle, routing  # noqa: E402

# Browser sockets ride on the session cookie: check the Origin. API sockets
# carry a single-use token and come from any program: they have no Origin.
chat_websockets = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(routing.websocket_urlpatterns)))
api_websockets = URLRouter(routing.api_websocket_urlpatterns)


async def websockets(scope, receive, send):
    handler = api_websockets if scope["path"].startswith("/v1/ws/") else chat_websockets
    return await handler(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websockets,
        "channel": ChannelNameRouter(routing.channel_workers),
    }
)

# Servers load their models at start-up, not on the first query, and store
# what they are saying when they are stopped.
lifecycle.start()
lifecycle.stop_with_daphne()
