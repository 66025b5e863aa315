"""The chat WebSocket's wire format (documented in docs/protocol.md).

JSON text frames carry events. Audio chunks travel as binary frames: a 4-byte
big-endian header length N, N bytes of UTF-8 JSON header, then the audio. With
``?audio=base64`` a chunk is a JSON ``audio.chunk`` event instead.
"""

from __future__ import annotations

import base64
import json
import struct

_LENGTH = struct.Struct(">I")


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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
    """The base64 JSON form of an audio chunk."""
    return {"type": "audio.chunk", **header, "data": base64.b64encode(data).decode("ascii")}


def error_event(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


def parse_client_event(text: str | None, binary: bytes | None) -> dict:
    """A client frame as a dict with a ``type``, or ProtocolError."""
    if binary is not None:
        raise ProtocolError("binary_not_supported", "Send JSON text frames; binary frames are not accepted.")
    try:
        event = json.loads(text or "")
    except ValueError:
        raise ProtocolError("bad_json", "The frame is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProtocolError("bad_event", 'Events are JSON objects with a "type".')
    return event
