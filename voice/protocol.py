"""The chat's wire vocabulary, all of it (documented in docs/protocol.md).

Every message is a frozen dataclass that knows its ``type``, how it is written
(``to_event``) and how it is read (``from_event``), as Wyoming's events do.
Two wires carry them:

- **The chat WebSocket.** JSON text frames carry events. Audio chunks travel
  as binary frames: a 4-byte big-endian header length N, N bytes of UTF-8 JSON
  header, then the audio; with ``?audio=base64`` a chunk is a JSON
  ``audio.chunk`` event instead. Client events are read strictly: a bad one is
  a ``ProtocolError`` whose code and message are safe to send back.
- **The channel layer**, between the processes of a deployment. Server events
  reach every tab of a conversation through its group, as the same dicts plus
  an ``origin`` (the channel of the tab that asked). Stops go to the channel
  of the process producing a reply, reply jobs and their acknowledgements
  between servers and reply workers, and session notices to a user's group.

The page reads event types, close codes and error codes from
static/voice/wire.js, which ``manage.py wire_js`` writes from this module. The
model pool's messages never leave a machine; they are in ``voice.pool``.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from .exceptions import (
    BadAudio,
    NoSpeech,
    STTError,
    TranscriberBusy,
    TranscriberUnavailable,
    UnknownLanguage,
    UtteranceTooLong,
    VoiceError,
)

if TYPE_CHECKING:
    from .audio import AudioChunk as Audio
    from .models import Message
    from .sentences import Sentence

_LENGTH = struct.Struct(">I")

# The one audio format voice input takes.
SPEECH_FORMAT = "pcm_s16le"
SPEECH_RATE = 16000


class Close:
    """Why the server closed a chat socket (it accepts first, so that the browser sees the code).

    Plain ints, not an IntEnum: Daphne's WebSocket library refuses any close
    code whose type is not exactly ``int`` (the client then sees 1011).
    """

    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    TOO_MANY_SOCKETS = 4429  # the user has VOICE_SOCKETS_PER_USER open in this process already
    UNAVAILABLE = 4503

    @classmethod
    def codes(cls) -> dict[str, int]:
        return {name: value for name, value in vars(cls).items() if name.isupper()}


class ProtocolError(VoiceError):
    """A client event we cannot act on. ``code`` and the message are safe to send back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code, public_message=message)


# Errors about an utterance: nothing was stored, and the page shows them at the
# microphone. Those of RECORDING_ERRORS end the recording itself.
RECORDING_ERRORS = ("speech_not_started", "bad_audio_format", UtteranceTooLong.code, "speech_rate_limited")
SPEECH_ERRORS = (
    *RECORDING_ERRORS,
    NoSpeech.code,
    BadAudio.code,
    UnknownLanguage.code,
    STTError.code,
    TranscriberUnavailable.code,
    TranscriberBusy.code,
    "stt_timeout",
)

# Errors about hands-free mode: the page shows them by its button (listen_limit: the mode is off).
LISTEN_ERRORS = ("hands_free_on", "listen_limit", "listen_failed", "audio_too_fast")


class Event:
    """A message of a wire: ``{"type": type, **fields}``."""

    type: ClassVar[str]

    def to_event(self) -> dict:
        return {"type": self.type, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_event(cls, event: dict) -> Self:
        """Read a message another process of this deployment wrote (trusted: not validated)."""
        return cls(**{f.name: event[f.name] for f in fields(cls) if f.name in event})


def check_frame_size(frame: str | bytes, limit: int) -> None:
    """ProtocolError for a frame over ``limit`` characters (text) or bytes (audio), before it is parsed.

    A query of VOICE_MAX_QUERY_CHARS and 100 ms of audio fit many times over;
    Daphne closes the socket past a hard cap of its own (see settings).
    """
    if len(frame) > limit:
        raise ProtocolError("frame_too_large", f"That frame is too large: at most {limit} characters or bytes.")


# --- Client → server ---------------------------------------------------------
@dataclass(frozen=True)
class Interrupted:
    """The reply a tab was playing when its user asked again or stopped it, and how much of it was heard."""

    message_id: int | None = None
    heard_ms: int | None = None

    @classmethod
    def from_event(cls, event: dict) -> Interrupted:
        return cls(_optional_id(event), _optional_heard_ms(event))

    def fields(self) -> dict:
        return {name: value for name, value in vars(self).items() if value is not None}


class ClientEvent(Event):
    def to_event(self) -> dict:
        """As the page sends it: without the fields it leaves out."""
        event = {"type": self.type}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Interrupted):
                event.update(value.fields())
            elif value not in (None, ""):
                event[f.name] = value
        return event


@dataclass(frozen=True)
class Query(ClientEvent):
    """Store this text and answer it; it interrupts the reply before it."""

    type: ClassVar[str] = "query"
    text: str
    client_id: str = ""
    interrupted: Interrupted = field(default_factory=Interrupted)

    @classmethod
    def from_event(cls, event: dict) -> Query:
        from django.conf import settings

        text = storable_text(event.get("text"), limit=settings.VOICE_MAX_QUERY_CHARS)
        return cls(text, _optional_client_id(event), Interrupted.from_event(event))


@dataclass(frozen=True)
class Cancel(ClientEvent):
    """Stop the reply in production."""

    type: ClassVar[str] = "cancel"
    interrupted: Interrupted = field(default_factory=Interrupted)

    @classmethod
    def from_event(cls, event: dict) -> Cancel:
        return cls(Interrupted.from_event(event))


@dataclass(frozen=True)
class Heard(ClientEvent):
    """This tab stopped playing a reply early (another tab asked): how much of it it played."""

    type: ClassVar[str] = "heard"
    message_id: int
    heard_ms: int

    @classmethod
    def from_event(cls, event: dict) -> Heard:
        interrupted = Interrupted.from_event(event)
        if interrupted.message_id is None or interrupted.heard_ms is None:
            raise ProtocolError("bad_event", '"heard" needs "message_id" and "heard_ms".')
        return cls(interrupted.message_id, interrupted.heard_ms)


@dataclass(frozen=True)
class PlaybackPosition(ClientEvent):
    """Hands-free, while a reply sounds in this tab: how much of it had played when the microphone had sent
    ``mic_samples`` since ``listen.start``. The echo canceller lines the reply up with the microphone by it."""

    type: ClassVar[str] = "playback.position"
    message_id: int
    played_ms: int
    mic_samples: int

    @classmethod
    def from_event(cls, event: dict) -> PlaybackPosition:
        message_id = _optional_id(event)
        played_ms = _optional_heard_ms({"heard_ms": event.get("played_ms")})
        mic_samples = event.get("mic_samples")
        if message_id is None or played_ms is None:
            raise ProtocolError("bad_event", '"playback.position" needs "message_id" and "played_ms".')
        if isinstance(mic_samples, bool) or not isinstance(mic_samples, int) or not 0 <= mic_samples < 2**53:
            raise ProtocolError("bad_event", '"mic_samples" must be the number of samples sent since listen.start.')
        return cls(message_id, played_ms, mic_samples)


@dataclass(frozen=True)
class SpeechStart(ClientEvent):
    """An utterance begins: binary frames of 16 kHz mono PCM16 follow. It interrupts, as a query does."""

    type: ClassVar[str] = "speech.start"
    interrupted: Interrupted = field(default_factory=Interrupted)
    format: str = SPEECH_FORMAT
    sample_rate: int = SPEECH_RATE

    @classmethod
    def from_event(cls, event: dict) -> SpeechStart:
        _check_speech_format(event)
        return cls(Interrupted.from_event(event))


def _check_speech_format(event: dict) -> None:
    announced = (event.get("format"), event.get("sample_rate"), event.get("channels", 1))
    if announced != (SPEECH_FORMAT, SPEECH_RATE, 1):
        raise ProtocolError(
            "bad_audio_format",
            f"Voice input must be {SPEECH_FORMAT}, mono, at {SPEECH_RATE} Hz: convert it first.",
        )


@dataclass(frozen=True)
class SpeechEnd(ClientEvent):
    """The utterance is over: transcribe it, store it as a query and answer it."""

    type: ClassVar[str] = "speech.end"
    client_id: str = ""
    interrupted: Interrupted = field(default_factory=Interrupted)

    @classmethod
    def from_event(cls, event: dict) -> SpeechEnd:
        return cls(_optional_client_id(event), Interrupted.from_event(event))


@dataclass(frozen=True)
class SpeechCancel(ClientEvent):
    """Throw the utterance away."""

    type: ClassVar[str] = "speech.cancel"

    @classmethod
    def from_event(cls, event: dict) -> SpeechCancel:
        return cls()


@dataclass(frozen=True)
class ListenStart(ClientEvent):
    """Hands-free mode: the open microphone's frames follow until ``listen.stop``; the server finds the turns."""

    type: ClassVar[str] = "listen.start"
    format: str = SPEECH_FORMAT
    sample_rate: int = SPEECH_RATE

    @classmethod
    def from_event(cls, event: dict) -> ListenStart:
        _check_speech_format(event)
        return cls()


@dataclass(frozen=True)
class ListenStop(ClientEvent):
    """Hands-free mode off: a turn not yet ended is dropped."""

    type: ClassVar[str] = "listen.stop"

    @classmethod
    def from_event(cls, event: dict) -> ListenStop:
        return cls()


CLIENT_EVENTS: dict[str, type[ClientEvent]] = {
    event.type: event
    for event in (
        Query,
        Cancel,
        Heard,
        PlaybackPosition,
        SpeechStart,
        SpeechEnd,
        SpeechCancel,
        ListenStart,
        ListenStop,
    )
}


def parse_client_event(text: str) -> ClientEvent:
    """A client's text frame as its typed event, or ProtocolError."""
    try:
        event = json.loads(text or "")
    except (ValueError, RecursionError):  # RecursionError: nesting too deep to parse
        raise ProtocolError("bad_json", "The frame is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProtocolError("bad_event", 'Events are JSON objects with a "type".')
    if event["type"] not in CLIENT_EVENTS:
        raise ProtocolError("unknown_type", f"Unknown event type; use one of {', '.join(CLIENT_EVENTS)}.")
    return CLIENT_EVENTS[event["type"]].from_event(event)


def storable_text(value: Any, *, limit: int) -> str:
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


def _optional_client_id(event: dict) -> str:
    """The page's own id for a query ("" if none): letters, digits, - and _, at most 64."""
    value = event.get("client_id")
    if value is None:
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ProtocolError("bad_event", '"client_id" must be 1 to 64 letters, digits, - or _.')
    return value


def _optional_id(event: dict) -> int | None:
    value = event.get("message_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProtocolError("bad_event", '"message_id" must be a positive integer.')
    return value


def _optional_heard_ms(event: dict) -> int | None:
    value = event.get("heard_ms")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10**9:
        raise ProtocolError("bad_event", '"heard_ms" must be a number of milliseconds.')
    return round(value)


# --- Server → client ---------------------------------------------------------
@dataclass(frozen=True)
class StoredMessage(Event):
    """A message was stored, or changed (its status, its text at the end)."""

    type: ClassVar[str] = "message"
    message: dict

    @classmethod
    def of(cls, message: Message) -> StoredMessage:
        return cls(message.as_event_payload())


@dataclass(frozen=True)
class ReplyDelta(Event):
    type: ClassVar[str] = "reply.delta"
    message_id: int
    text: str


@dataclass(frozen=True)
class Queued(Event):
    """The reply waits for the model: ``position`` in line (1: next; 0: the model is reading the conversation,
    which it had no memory of), and the likely wait if known."""

    type: ClassVar[str] = "queued"
    message_id: int
    position: int
    expected_wait_ms: int | None

    @classmethod
    def waiting(cls, message_id: int, position: int, expected_wait: float | None) -> Queued:
        return cls(message_id, position, None if expected_wait is None else round(expected_wait * 1000))


@dataclass(frozen=True)
class AudioStart(Event):
    type: ClassVar[str] = "audio.start"
    message_id: int
    format: str
    sample_rate: int
    channels: int

    @classmethod
    def of(cls, message_id: int, chunk: Audio) -> AudioStart:
        return cls(message_id, chunk.format, chunk.sample_rate, chunk.channels)


@dataclass(frozen=True)
class AudioData(Event):
    """One chunk of a reply's audio: a binary frame to the page (or base64 JSON), header and bytes between processes."""

    type: ClassVar[str] = "audio.chunk"
    header: dict
    data: bytes

    @classmethod
    def of(cls, message_id: int, seq: int, chunk: Audio, segment: Sentence) -> AudioData:
        header = {
            "message_id": message_id,
            "seq": seq,
            "format": chunk.format,
            "sample_rate": chunk.sample_rate,
            "channels": chunk.channels,
            # Character span of the segment in the displayed reply, for highlighting.
            "text_start": segment.start,
            "text_end": segment.end,
        }
        return cls(header, chunk.data)

    def frame(self) -> bytes:
        encoded = json.dumps(self.header, separators=(",", ":")).encode()
        return _LENGTH.pack(len(encoded)) + encoded + self.data

    @classmethod
    def from_frame(cls, frame: bytes) -> AudioData:
        if len(frame) < _LENGTH.size:
            raise ProtocolError("bad_frame", "Frame too short for its header length.")
        (length,) = _LENGTH.unpack_from(frame)
        end = _LENGTH.size + length
        if end > len(frame):
            raise ProtocolError("bad_frame", "Header length runs past the end of the frame.")
        return cls(json.loads(frame[_LENGTH.size : end]), frame[end:])

    def base64_event(self) -> dict:
        """The JSON form of the chunk (``?audio=base64``)."""
        return {"type": self.type, **self.header, "data": base64.b64encode(self.data).decode("ascii")}


@dataclass(frozen=True)
class AudioEnd(Event):
    type: ClassVar[str] = "audio.end"
    message_id: int
    chunks: int
    duration_ms: int | None
    url: str | None


@dataclass(frozen=True)
class ReplyDone(Event):
    """The reply is stored: nothing more comes for it. ``cut``: why it was ended early ("length", "repetition")."""

    type: ClassVar[str] = "reply.done"
    message_id: int
    status: str
    metrics: dict
    cut: str = ""


@dataclass(frozen=True)
class Transcribed(Event):
    """What the speaking tab's words are so far (``final``: the query that will be stored)."""

    type: ClassVar[str] = "transcript"
    text: str
    final: bool
    turn_id: str = ""  # hands-free mode: the turn they belong to

    def to_event(self) -> dict:
        event = super().to_event()
        if not self.turn_id:
            del event["turn_id"]
        return event


class Listening(StrEnum):
    """A socket's hands-free mode (``listen.state``'s ``state``)."""

    LISTENING = "listening"
    OFF = "off"


class ListenOff(StrEnum):
    """Why hands-free mode went off (``listen.state``'s ``reason``)."""

    STOPPED = "stopped"  # the page asked
    IDLE = "idle"  # nobody spoke for VOICE_HANDSFREE_IDLE_MINUTES
    LIMIT = "limit"  # another socket of the user listens already
    FAILED = "failed"  # the voice activity model could not start


class ListenNote(StrEnum):
    """What a listening socket works without (``listen.state`` listening's ``reason``)."""

    NO_ECHO_CANCELLER = "no_echo_canceller"  # it could not run: the replies' echo is judged by its words alone


class TurnPhase(StrEnum):
    """Where a hands-free turn is (``listen.turn``'s ``phase``)."""

    SPEAKING = "speaking"  # it began
    ENDED = "ended"  # it ended: its query follows
    DISCARDED = "discarded"  # it stored nothing


class DiscardReason(StrEnum):
    """Why a hands-free turn stored nothing (``listen.turn``'s ``reason``)."""

    NOISE = "noise"  # no words
    ECHO = "echo"  # the assistant's own words
    BACKCHANNEL = "backchannel"  # an acknowledgement ("mm-hm")
    COMMAND = "command"  # "stop": done by stopping the reply
    TOO_LONG = "too_long"
    FAILED = "failed"


@dataclass(frozen=True)
class ListenState(Event):
    """Hands-free mode went on (``listening``) or off on this socket, and why it went off (or what it lacks)."""

    type: ClassVar[str] = "listen.state"
    state: Listening
    reason: ListenOff | ListenNote | str = ""  # when off; when listening, what it works without


@dataclass(frozen=True)
class ListenTurn(Event):
    """A hands-free turn began (``speaking``), ended (``ended``: its query follows) or stored nothing."""

    type: ClassVar[str] = "listen.turn"
    turn_id: str
    phase: TurnPhase
    reason: DiscardReason | str = ""  # when discarded


@dataclass(frozen=True)
class PlaybackDuck(Event):
    """To every tab: someone talks over reply ``message_id``; pause it where it is (``on``), or let it go on."""

    type: ClassVar[str] = "playback.duck"
    message_id: int
    on: bool


@dataclass(frozen=True)
class ErrorEvent(Event):
    type: ClassVar[str] = "error"
    code: str
    message: str
    message_id: int | None = None

    @classmethod
    def of(cls, error: VoiceError, message_id: int | None = None) -> ErrorEvent:
        return cls(error.code, error.public_message, message_id)

    def to_event(self) -> dict:
        event = super().to_event()
        if self.message_id is None:
            del event["message_id"]
        return event


SERVER_EVENTS: dict[str, type[Event]] = {
    event.type: event
    for event in (
        StoredMessage,
        ReplyDelta,
        Queued,
        AudioStart,
        AudioData,
        AudioEnd,
        ReplyDone,
        Transcribed,
        ListenState,
        ListenTurn,
        PlaybackDuck,
        ErrorEvent,
    )
}


# --- Between processes (the channel layer) -----------------------------------------
@dataclass(frozen=True)
class ReplyStop(Event):
    """To the channel of the process producing a reply: stop it, stored with ``status``."""

    type: ClassVar[str] = "reply.stop"
    message_id: int
    status: str
    heard_ms: int | None = None


@dataclass(frozen=True)
class ReplyJob(Event):
    """From a server to the reply workers' channel: produce this reply."""

    type: ClassVar[str] = "reply.job"
    message_id: int
    voice: str | None
    speed: float
    origin: str  # the asking tab's channel
    group: str  # the conversation's group
    reply_to: str  # the server's channel, for the acknowledgement
    received_wall: float  # when the query arrived (wall clock), for latency figures
    deadline: float  # a worker that gets the job later leaves it alone (wall clock)


@dataclass(frozen=True)
class ReplyAccepted(Event):
    """From a worker to the server that sent a job: the worker produces it."""

    type: ClassVar[str] = "reply.accepted"
    message_id: int


@dataclass(frozen=True)
class SessionEnded(Event):
    """To a user's group: the session with this fingerprint logged out."""

    type: ClassVar[str] = "session.ended"
    session: str


@dataclass(frozen=True)
class SessionCheck(Event):
    """To a user's group: the user changed; every socket checks its session again."""

    type: ClassVar[str] = "session.check"
