"""The wire vocabulary: each message read back as it was written, and the page's copy of it current."""

import json
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from voice import exceptions, protocol
from voice.management.commands import wire_js
from voice.models import Message

CLIENT_SAMPLES = [
    protocol.Query("Hello there.", "q-1", protocol.Interrupted(42, 1830)),
    protocol.Query("Hello there."),
    protocol.Cancel(protocol.Interrupted(42, 2210)),
    protocol.Cancel(),
    protocol.Heard(42, 950),
    protocol.SpeechStart(protocol.Interrupted(7, 700)),
    protocol.SpeechEnd("v-19c2"),
    protocol.SpeechCancel(),
]


@pytest.mark.parametrize("event", CLIENT_SAMPLES, ids=lambda event: event.type)
def test_a_client_event_reads_back_as_it_was_written(event, settings):
    assert protocol.parse_client_event(json.dumps(event.to_event())) == event


def test_client_events_are_written_as_docs_protocol_shows_them():
    assert CLIENT_SAMPLES[0].to_event() == {
        "type": "query",
        "text": "Hello there.",
        "client_id": "q-1",
        "message_id": 42,
        "heard_ms": 1830,
    }
    assert CLIENT_SAMPLES[5].to_event() == {
        "type": "speech.start",
        "format": "pcm_s16le",
        "sample_rate": 16000,
        "message_id": 7,
        "heard_ms": 700,
    }


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "heard", "message_id": 3}', "bad_event"),
        ('{"type": "playback.position", "message_id": 3, "played_ms": 10}', "bad_event"),
        ('{"type": "playback.position", "message_id": 3, "played_ms": 10, "mic_samples": -1}', "bad_event"),
        ('{"type": "playback.position", "message_id": 3, "played_ms": "10", "mic_samples": 0}', "bad_event"),
        ('{"type": "speech.start", "format": "f32le", "sample_rate": 16000}', "bad_audio_format"),
        ('{"type": "query", "text": "Hi", "message_id": true}', "bad_event"),
        ('{"type": "speech.end", "client_id": "no spaces"}', "bad_event"),
        ('{"type": "reply.stop", "message_id": 3}', "unknown_type"),
    ],
)
def test_a_bad_client_event_is_a_protocol_error_with_a_stable_code(frame, code):
    with pytest.raises(protocol.ProtocolError) as raised:
        protocol.parse_client_event(frame)
    assert raised.value.code == code


@pytest.mark.parametrize(
    "message",
    [
        protocol.ReplyStop(5, "interrupted", 1200),
        protocol.ReplyJob(5, None, 1.0, "origin!1", "conversation.3", "server!2", 1.5e9, 1.5e9 + 10),
        protocol.ReplyAccepted(5),
        protocol.SessionEnded("f" * 64),
        protocol.SessionCheck(),
        protocol.ReplyDone(5, "complete", {"ttfa_ms": 300}),
        protocol.Transcribed("What time is it?", final=True),
    ],
    ids=lambda message: message.type,
)
def test_a_channel_layer_message_reads_back_as_it_was_written(message):
    assert type(message).from_event(message.to_event()) == message


def test_an_audio_chunk_survives_its_binary_frame():
    chunk = protocol.AudioData({"message_id": 5, "seq": 0, "format": "pcm_s16le"}, b"\x01\x02" * 100)
    assert protocol.AudioData.from_frame(chunk.frame()) == chunk
    with pytest.raises(protocol.ProtocolError):
        protocol.AudioData.from_frame(chunk.frame()[:6])


def test_an_error_event_names_its_reply_only_when_it_has_one():
    assert protocol.ErrorEvent.of(exceptions.NoSpeech()).to_event() == {
        "type": "error",
        "code": "no_speech",
        "message": "I didn't catch that.",
    }
    assert protocol.ErrorEvent("llm_failed", "No.", 9).to_event()["message_id"] == 9


def test_the_pages_copy_of_the_vocabulary_is_current():
    call_command("wire_js", "--check")


def test_a_stale_copy_is_caught(monkeypatch, tmp_path):
    stale = tmp_path / "wire.js"
    stale.write_text(wire_js.render().replace("4401", "4400"))
    monkeypatch.setattr(wire_js, "WIRE_JS", stale)
    with pytest.raises(CommandError, match="out of date"):
        call_command("wire_js", "--check")


def test_every_speech_recognition_error_is_one_the_page_knows():
    codes = {cls.code for cls in _subclasses(exceptions.STTError)} | {exceptions.STTError.code}
    assert codes <= set(protocol.SPEECH_ERRORS)


# Statuses, roles and hands-free words the page compares with what the server sends.
WIRE_ENUMS = (
    Message.Status,
    Message.Role,
    protocol.Listening,
    protocol.ListenOff,
    protocol.TurnPhase,
    protocol.DiscardReason,
)
# The page's own states of its microphone and hands-free button, which share some of those words.
PAGE_STATES = {"listening", "off", "idle", "speaking"}


def test_the_page_spells_no_event_type_close_code_or_error_code_itself():
    """The vocabulary reaches the page from wire.js only (issue #20: it was copied into chat.js)."""
    static = Path(__file__).resolve().parents[3] / "static" / "voice"
    values = [
        *protocol.CLIENT_EVENTS,
        *protocol.SERVER_EVENTS,
        *protocol.SPEECH_ERRORS,
        *(member.value for enum in WIRE_ENUMS for member in enum),
    ]
    words = sorted(set(values) - PAGE_STATES, key=len, reverse=True)
    # "query" and "message" are also an element's id and a DOM event: plain words count where a type is compared.
    dotted = "|".join(re.escape(word) for word in words if re.search(r"[._]", word))
    plain = "|".join(re.escape(word) for word in words if not re.search(r"[._]", word))
    spelled = re.compile(rf"""["'`]({dotted})["'`]|(?:type:|case|[!=]==)\s*["'`]({plain})["'`]""")
    codes = re.compile(rf"\b({'|'.join(map(str, protocol.Close.codes().values()))})\b")
    for module in static.glob("*.js"):
        if module.name == "wire.js":
            continue
        text = module.read_text()
        found = {word for match in spelled.findall(text) for word in match if word}
        assert not found, f"{module.name} spells {found}: import them from wire.js"
        assert not codes.findall(text), f"{module.name} spells close codes: import CLOSE from wire.js"


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
