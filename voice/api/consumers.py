"""The Vivoka-style synthesis socket: ``/v1/ws/<token>``.

The token (from ``POST /v1/voice-synthesis/synthesize``) is the credential: it
is single-use and short-lived, so this socket needs neither cookies nor an
Origin header, and non-browser clients connect as they are.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from ..models import SpeechRequest, SpeechToken
from ..protocol import Close
from ..tts import TTSError, get_engine
from .auth import Caller
from .views import pcm_stream, record

logger = logging.getLogger(__name__)

PCM_DATA_URI = "data:audio/pcm;base64,"


class TokenSynthesisConsumer(AsyncWebsocketConsumer):
    task: asyncio.Task | None = None

    async def connect(self) -> None:
        # The token is checked while the handshake is still open: nothing is
        # accepted on behalf of a caller not yet known to be allowed.
        token = await database_sync_to_async(SpeechToken.redeem)(self.scope["url_route"]["kwargs"]["token"])
        await self.accept()
        if token is None:
            # Accepted only to say why, as docs/api.md promises: a close before
            # accept would reach the client as a bare HTTP 403, with no code.
            await self.send_json({"error": {"code": "invalid_token", "message": "Unknown, used or expired token."}})
            await self.close(code=Close.UNAUTHENTICATED)
            return
        self.task = asyncio.create_task(self.speak(token))

    async def disconnect(self, code: int) -> None:
        if self.task is not None:
            self.task.cancel()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        pass  # nothing to say to us; the stream is one-way

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))

    async def speak(self, token: SpeechToken) -> None:
        caller = Caller(user=token.user, api_key=token.api_key, ident="")
        stats: dict = {}
        chunks = 0
        voice_id = token.voice
        try:
            engine = get_engine()
            voice = await database_sync_to_async(engine.get_voice)(token.voice)
            voice_id = voice.id
            await self.send_json({"event": {"type": "started", "voice_id": voice.id, "sample_rate": voice.sample_rate}})
            async for chunk in pcm_stream(engine, token.text, voice.id, token.speed, stats):
                chunks += 1
                await self.send_json({"data": PCM_DATA_URI + base64.b64encode(chunk.data).decode("ascii")})
            await self.send_json({"event": {"type": "finished", "duration_ms": stats["duration_ms"], "chunks": chunks}})
        except TTSError as exc:
            logger.warning("Token synthesis failed: %s", exc)
            stats.setdefault("error", str(exc))
            await self.send_json({"error": {"code": exc.code, "message": exc.public_message}})
        except Exception as exc:
            logger.exception("Token synthesis failed")
            stats.setdefault("error", repr(exc))
            await self.send_json(
                {"error": {"code": "internal_error", "message": "Something went wrong on the server."}}
            )
        finally:
            await record(caller, SpeechRequest.Api.VIVOKA, voice_id, token.text, "pcm", stats)
        await self.close()
