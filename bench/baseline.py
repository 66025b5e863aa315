"""The usual approach, for comparison: synthesize the whole reply, then send it once as base64 JSON.

Same Daphne process, same Channels stack, same engine and synthesis pool as
ours; it even skips the database, which only flatters it.
"""

import asyncio
import base64
import json

from channels.generic.websocket import AsyncWebsocketConsumer

from voice import audio
from voice.tts import get_engine
from voice.tts.base import executor


class WholeReplyConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        text = json.loads(text_data)["text"]
        engine = get_engine()
        loop = asyncio.get_running_loop()
        chunks = await loop.run_in_executor(executor(), lambda: list(engine.synthesize(text)))
        recording = audio.Recording()
        for chunk in chunks:
            recording.add(chunk)
        payload = base64.b64encode(recording.file_bytes()).decode("ascii")
        await self.send(text_data=json.dumps({"type": "audio", "format": "wav", "data": payload}))
