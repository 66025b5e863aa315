import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from voice import audio
from voice.tts import TTSError, get_engine


class Command(BaseCommand):
    help = "Synthesize text to a WAV (or MP3) file and report how fast the engine was."

    def add_arguments(self, parser):
        parser.add_argument("text", help="What to say.")
        parser.add_argument("--engine", help="Engine name or dotted path (default: VOICE_TTS_ENGINE).")
        parser.add_argument("--voice", help="Voice id (see `manage.py voices`).")
        parser.add_argument("--speed", type=float, default=1.0, help="1.0 is normal; 0.5 to 2.0.")
        parser.add_argument("--out", required=True, help="Output file: .wav, or .mp3 for MP3 engines.")

    def handle(self, *args, text, engine, voice, speed, out, **options):
        if not text.strip():
            raise CommandError("Nothing to say: the text is empty.")
        out_path = Path(out)
        try:
            tts = get_engine(engine)
            started = time.perf_counter()
            voice = tts.prepare(voice).id
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            first_chunk = None
            recording = audio.Recording()
            for chunk in tts.synthesize(text, voice=voice, speed=speed):
                first_chunk = first_chunk or time.perf_counter() - started
                recording.add(chunk)
            elapsed = time.perf_counter() - started
        except TTSError as exc:
            raise CommandError(str(exc)) from exc
        if not recording:
            raise CommandError("The engine produced no audio for this text.")
        wanted = out_path.suffix.lower().lstrip(".")
        if wanted != recording.file_format:
            raise CommandError(
                f"{tts.name} produces {recording.file_format}; name the output file "
                f"{out_path.with_suffix('.' + recording.file_format)}."
            )
        out_path.write_bytes(recording.file_bytes())
        duration = recording.duration
        self.stdout.write(f"Wrote {out_path} ({recording.file_format}, {len(recording.chunks)} chunks)")
        self.stdout.write(f"duration:         {duration:.2f} s")
        self.stdout.write(f"voice load:       {loaded * 1000:.0f} ms")
        self.stdout.write(f"first chunk:      {first_chunk * 1000:.0f} ms")
        self.stdout.write(f"synthesis time:   {elapsed:.2f} s")
        self.stdout.write(f"real-time factor: {elapsed / duration:.3f}" if duration else "real-time factor: n/a")
