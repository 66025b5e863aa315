"""The project's ASGI application plus the baseline at /ws/baseline/, in one server."""

from voiceproject.asgi import application as voice_application

from .baseline import WholeReplyConsumer

baseline = WholeReplyConsumer.as_asgi()


async def application(scope, receive, send):
    if scope["type"] == "websocket" and scope["path"] == "/ws/baseline/":
        return await baseline(scope, receive, send)
    return await voice_application(scope, receive, send)
