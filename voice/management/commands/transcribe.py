import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from voice import audio
from voice.stt import SAMPLE_RATE, STTError, get_transcriber


class Command(BaseCommand):
    help = "Transcribe a 16-bit WAV file (any rate, any channels) and report how fast the engine was."

    def add_arguments(self, parser):
        parser.add_argument("file", help="A 16-bit PCM WAV file.")
        parser.add_argument("--engine", help="Engine name or dotted path (default: VOICE_STT_ENGINE).")
        parser.add_argument("--language", help='Language code, or "auto" to detect it (default: VOICE_STT_LANGUAGE).')

    def handle(self, *args, file, engine, language, **options):
        path = Path(file)
        try:
            chunk = audio.read_wav(path.read_bytes())
            pcm = audio.resample(chunk.data, chunk.sample_rate, SAMPLE_RATE, chunk.channels)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        except audio.AudioFormatError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        duration = audio.pcm_duration(len(pcm), SAMPLE_RATE)
        if not duration:
            raise CommandError(f"{path} holds no audio.")
        try:
            stt = get_transcriber(engine)
            started = time.perf_counter()
            stt.prepare()
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            transcript = stt.transcribe(pcm, SAMPLE_RATE, language)
            elapsed = time.perf_counter() - started
        except STTError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(transcript.text or "(no speech heard)")
        self.stdout.write(f"language:         {transcript.language or 'n/a'}")
        channels = "mono" if chunk.channels == 1 else f"{chunk.channels} channels"
        self.stdout.write(f"duration:         {duration:.2f} s ({chunk.sample_rate} Hz, {channels})")
        self.stdout.write(f"model load:       {loaded * 1000:.0f} ms")
        self.stdout.write(f"transcription:    {elapsed:.2f} s")
        self.stdout.write(f"real-time factor: {elapsed / duration:.3f}")
