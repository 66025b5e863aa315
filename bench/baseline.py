"""The usual approach, for comparison: synthesize the whole reply, then send it once as base64 JSON.

Same Daphne process, same Channels stack and same engine as ours (in a thread
of the server process); it even skips the database, which only flatters it.
"""

import asyncio
import base64
import json

from channels.generic.websocket import AsyncWebsocketConsumer

from voice import audio
from voice.tts import get_engine


class WholeReplyConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        text = json.loads(text_data)["text"]
        engine = get_engine()
        chunks = await asyncio.to_thread(lambda: list(engine.synthesize(text)))
        recording = audio.Recording()
        for chunk in chunks:
            recording.add(chunk)
        payload = base64.b64encode(recording.file_bytes()).decode("ascii")
        await self.send(text_data=json.dumps({"type": "audio", "format": "wav", "data": payload}))
