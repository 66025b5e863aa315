from django.conf import settings
from django.core.management.base import BaseCommand

from voice.tts import ENGINES, TTSError, get_engine


class Command(BaseCommand):
    help = "List every engine's voices."

    def add_arguments(self, parser):
        parser.add_argument("--engine", action="append", help="Only this engine (repeatable).")

    def handle(self, *args, engine, **options):
        names = engine or list(ENGINES)
        rows = [("ENGINE", "VOICE", "LANGUAGE", "RATE", "NAME")]
        for name in names:
            try:
                voices = get_engine(name).voices()
            except TTSError as exc:
                self.stderr.write(f"{name}: {exc}")
                continue
            default = get_engine(name).default_voice().id
            for voice in voices:
                marker = " *" if voice.id == default and name == settings.VOICE_TTS_ENGINE else ""
                rows.append((name, voice.id + marker, voice.language, str(voice.sample_rate or ""), voice.name))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())
        self.stdout.write("* the default voice")
