"""The chat WebSocket's wire events, all of them (documented in docs/protocol.md).

JSON text frames carry events. Audio chunks travel as binary frames: a 4-byte
big-endian header length N, N bytes of UTF-8 JSON header, then the audio. With
``?audio=base64`` a chunk is a JSON ``audio.chunk`` event instead.

Server events travel through the channel layer first (to every tab of a
conversation), as the same dicts plus an ``origin``: the channel of the tab
that asked.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .audio import AudioChunk
    from .models import Message
    from .sentences import Sentence

_LENGTH = struct.Struct(">I")

# Client → server event types.
QUERY = "query"
CANCEL = "cancel"
HEARD = "heard"
SPEECH_START = "speech.start"
SPEECH_END = "speech.end"
SPEECH_CANCEL = "speech.cancel"
CLIENT_EVENTS = (QUERY, CANCEL, HEARD, SPEECH_START, SPEECH_END, SPEECH_CANCEL)

# The one audio format voice input takes.
SPEECH_FORMAT = "pcm_s16le"
SPEECH_RATE = 16000


class ProtocolError(ValueError):
    """A client event we cannot act on. ``code`` and the message are safe to send back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- Client → server ---------------------------------------------------------
def check_frame_size(frame: str | bytes, limit: int) -> None:
    """ProtocolError for a frame over ``limit`` characters (text) or bytes (audio), before it is parsed.

    A query of VOICE_MAX_QUERY_CHARS and 100 ms of audio fit many times over;
    Daphne closes the socket past a hard cap of its own (see settings).
    """
    if len(frame) > limit:
        raise ProtocolError("frame_too_large", f"That frame is too large: at most {limit} characters or bytes.")


def parse_client_event(text: str) -> dict:
    """A client's text frame as a dict with a ``type``, or ProtocolError."""
    try:
        event = json.loads(text or "")
    except (ValueError, RecursionError):  # RecursionError: nesting too deep to parse
        raise ProtocolError("bad_json", "The frame is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProtocolError("bad_event", 'Events are JSON objects with a "type".')
    if event["type"] not in CLIENT_EVENTS:
        raise ProtocolError("unknown_type", f"Unknown event type; use one of {', '.join(CLIENT_EVENTS)}.")
    return event


def storable_text(value, *, limit: int) -> str:
    """The text of a query, stripped, or ProtocolError if it cannot be stored as it is."""
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError("empty_text", "The query is empty.")
    text = value.strip()
    if len(text) > limit:
        raise ProtocolError("text_too_long", f"The query has {len(text)} characters; the limit is {limit}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON allows them, UTF-8 and databases do not
        raise ProtocolError("bad_text", "The query contains invalid Unicode.") from None
    if "\x00" in text:
        raise ProtocolError("bad_text", "The query contains a NUL character.")
    return text


def check_speech_format(event: dict) -> None:
    """``speech.start`` must announce 16 kHz mono PCM16, which is what transcription takes."""
    if event.get("format") != SPEECH_FORMAT or event.get("sample_rate") != SPEECH_RATE or event.get("channels", 1) != 1:
        raise ProtocolError(
            "bad_audio_format", f"Voice input must be {SPEECH_FORMAT}, mono, at {SPEECH_RATE} Hz: convert it first."
        )


def optional_client_id(event: dict) -> str:
    """The page's own id for a query ("" if none): letters, digits, - and _, at most 64."""
    value = event.get("client_id")
    if value is None:
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ProtocolError("bad_event", '"client_id" must be 1 to 64 letters, digits, - or _.')
    return value


def optional_id(event: dict, field: str = "message_id") -> int | None:
    value = event.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProtocolError("bad_event", f'"{field}" must be a positive integer.')
    return value


def optional_heard_ms(event: dict) -> int | None:
    value = event.get("heard_ms")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10**9:
        raise ProtocolError("bad_event", '"heard_ms" must be a number of milliseconds.')
    return round(value)


# --- Server → client ---------------------------------------------------------
def message_event(message: Message) -> dict:
    """A message was stored, or changed (its status, its text at the end)."""
    return {"type": "message", "message": message.as_event_payload()}


def reply_delta(message_id: int, text: str) -> dict:
    return {"type": "reply.delta", "message_id": message_id, "text": text}


def queued(message_id: int, position: int, expected_wait: float | None) -> dict:
    """The reply waits for the model: ``position`` in line (1: next), and the likely wait if known."""
    wait_ms = None if expected_wait is None else round(expected_wait * 1000)
    return {"type": "queued", "message_id": message_id, "position": position, "expected_wait_ms": wait_ms}


def audio_start(message_id: int, chunk: AudioChunk) -> dict:
    return {
        "type": "audio.start",
        "message_id": message_id,
        "format": chunk.format,
        "sample_rate": chunk.sample_rate,
        "channels": chunk.channels,
    }


def audio_header(message_id: int, seq: int, chunk: AudioChunk, segment: Sentence) -> dict:
    return {
        "message_id": message_id,
        "seq": seq,
        "format": chunk.format,
        "sample_rate": chunk.sample_rate,
        "channels": chunk.channels,
        # Character span of the segment in the displayed reply, for highlighting.
        "text_start": segment.start,
        "text_end": segment.end,
    }


def audio_chunk(header: dict, data: bytes) -> dict:
    """An audio chunk as it travels the channel layer; each tab frames it for its client."""
    return {"type": "audio.chunk", "header": header, "data": data}


def audio_end(message_id: int, chunks: int, duration_ms: int | None, url: str | None) -> dict:
    return {"type": "audio.end", "message_id": message_id, "chunks": chunks, "duration_ms": duration_ms, "url": url}


def reply_done(message_id: int, status: str, metrics: dict) -> dict:
    return {"type": "reply.done", "message_id": message_id, "status": status, "metrics": metrics}


def transcript_event(text: str, final: bool) -> dict:
    """What the speaking tab's words are so far (``final``: the query that will be stored)."""
    return {"type": "transcript", "text": text, "final": final}


def error_event(code: str, message: str, message_id: int | None = None) -> dict:
    event = {"type": "error", "code": code, "message": message}
    if message_id is not None:
        event["message_id"] = message_id
    return event


# --- Audio frames -----------------------------------------------------------------
def encode_audio_frame(header: dict, data: bytes) -> bytes:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTH.pack(len(encoded)) + encoded + data


def decode_audio_frame(frame: bytes) -> tuple[dict, bytes]:
    if len(frame) < _LENGTH.size:
        raise ProtocolError("bad_frame", "Frame too short for its header length.")
    (length,) = _LENGTH.unpack_from(frame)
    end = _LENGTH.size + length
    if end > len(frame):
        raise ProtocolError("bad_frame", "Header length runs past the end of the frame.")
    return json.loads(frame[_LENGTH.size : end]), frame[end:]


def audio_chunk_event(header: dict, data: bytes) -> dict:
    """The base64 JSON form of an audio chunk (``?audio=base64``)."""
    return {"type": "audio.chunk", **header, "data": base64.b64encode(data).decode("ascii")}
