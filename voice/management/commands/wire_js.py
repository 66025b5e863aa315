"""Write static/voice/wire.js, the page's copy of the chat's wire vocabulary, from voice.protocol.

The page never spells an event type, a close code or an error code itself: it
imports them from that file. ``--check`` fails when the file is out of date
(the test suite runs it).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from voice import protocol
from voice.models import TITLE_CHARS, Message

WIRE_JS = Path(settings.BASE_DIR) / "static" / "voice" / "wire.js"


def constant_name(value: str) -> str:
    return value.upper().replace(".", "_")


def choices(enum) -> dict[str, str]:
    return {member.name: member.value for member in enum}


def frozen_object(doc: str, name: str, entries: dict[str, object]) -> str:
    lines = [f"/** {doc} */", f"export const {name} = Object.freeze({{"]
    lines += [f"  {key}: {json.dumps(value)}," for key, value in entries.items()]
    return "\n".join([*lines, "});"])


def frozen_list(doc: str, name: str, values: tuple[str, ...]) -> str:
    lines = [f"/** {doc} */", f"export const {name} = Object.freeze(["]
    lines += [f"  {json.dumps(value)}," for value in values]
    return "\n".join([*lines, "]);"])


def render() -> str:
    parts = [
        "// The chat socket's vocabulary, generated from voice/protocol.py by\n"
        "// `manage.py wire_js`: do not edit; a test fails when it is out of date.",
        frozen_object(
            "Client → server event types.",
            "CLIENT",
            {constant_name(kind): kind for kind in protocol.CLIENT_EVENTS},
        ),
        frozen_object(
            "Server → client event types.",
            "SERVER",
            {constant_name(kind): kind for kind in protocol.SERVER_EVENTS},
        ),
        frozen_object("WebSocket close codes.", "CLOSE", protocol.Close.codes()),
        frozen_object("A message's status.", "STATUS", choices(Message.Status)),
        frozen_list("The statuses of a reply that was stopped before its end.", "STOPPED", tuple(Message.STOPPED)),
        frozen_object("Who wrote a message.", "ROLE", choices(Message.Role)),
        frozen_object("Hands-free mode's states (listen.state).", "LISTENING", choices(protocol.Listening)),
        frozen_object("Why hands-free mode went off.", "LISTEN_OFF", choices(protocol.ListenOff)),
        frozen_object("What a listening socket works without.", "LISTEN_NOTE", choices(protocol.ListenNote)),
        frozen_object("A hands-free turn's phases (listen.turn).", "TURN_PHASE", choices(protocol.TurnPhase)),
        frozen_object("Why a hands-free turn stored nothing.", "DISCARD_REASON", choices(protocol.DiscardReason)),
        frozen_object(
            'Why a reply was ended early: its "cut" ("" if it was not).',
            "CUT",
            choices(Message.Cut),
        ),
        frozen_list("Errors about an utterance: nothing was stored.", "SPEECH_ERRORS", protocol.SPEECH_ERRORS),
        frozen_list("Of those, the ones that end the recording itself.", "RECORDING_ERRORS", protocol.RECORDING_ERRORS),
        frozen_list("Errors about hands-free mode.", "LISTEN_ERRORS", protocol.LISTEN_ERRORS),
        "/** The one audio format voice input takes. */\n"
        f"export const SPEECH_FORMAT = {json.dumps(protocol.SPEECH_FORMAT)};\n"
        f"export const SPEECH_RATE = {protocol.SPEECH_RATE};",
        "/** A conversation's title: its first query, on one line, at most this many characters. */\n"
        f"export const TITLE_CHARS = {TITLE_CHARS};",
    ]
    return "\n\n".join(parts) + "\n"


class Command(BaseCommand):
    help = "Write static/voice/wire.js from voice/protocol.py (--check: fail if it is out of date)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="Change nothing; fail if the file differs.")

    def handle(self, *args, check: bool = False, **options) -> None:
        wanted = render()
        current = WIRE_JS.read_text(encoding="utf-8") if WIRE_JS.exists() else ""
        if check:
            if current != wanted:
                raise CommandError(f"{WIRE_JS} is out of date: run `manage.py wire_js`.")
            return
        if current != wanted:
            WIRE_JS.write_text(wanted, encoding="utf-8")
        self.stdout.write(f"Wrote {WIRE_JS}")
