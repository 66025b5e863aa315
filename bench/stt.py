"""Speech to text: accuracy and speed on our own Piper voice.

`python -m bench.stt` (about two minutes) or `python -m bench.stt --quick`.

Accuracy: Piper speaks each sentence, the audio is resampled to 16 kHz and
transcribed, and the word error rate is counted against the sentences (case
and punctuation ignored). The sentences hold no numbers: Whisper writes "8"
where Piper said "eight", which is a spelling difference, not an error.

Speed: audio is fed to an ``Utterance`` in 100 ms pieces, as a microphone
would, and the time from the last piece ("end of audio") to the final
transcript is measured for utterances of about 2, 5 and 10 seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time

SENTENCES = [
    "Good morning, how are you today?",
    "What is the weather like in Paris tomorrow?",
    "Please turn off the lights in the kitchen.",
    "Can you remind me to call my mother this evening?",
    "I would like to book a table by the window.",
    "How long does it take to boil an egg?",
    "Play some quiet music while I read.",
    "Where is the nearest train station?",
    "The meeting has been moved to Thursday afternoon.",
    "Could you explain how photosynthesis works?",
    "Add milk, bread and coffee to my shopping list.",
    "What time does the library close on Saturday?",
    "My flight was delayed because of the storm.",
    "Tell me a short story about a brave little fox.",
    "How do I reset my password?",
    "The children are playing football in the garden.",
    "Send a message to Anna saying I will be late.",
    "What is the capital city of Australia?",
    "Set a timer for the pasta.",
    "I can't find my keys anywhere in the house.",
    "Which planet is closest to the sun?",
    "Please read me the latest news headlines.",
    "We should leave early to avoid the traffic.",
    "How much flour do I need for pancakes?",
    "Translate good night into Spanish.",
    "The museum is open every day except Monday.",
    "Is it going to rain this weekend?",
    "Remind me to water the plants on Sunday morning.",
    "What's the difference between a frog and a toad?",
    "I need a recipe for a simple vegetable soup.",
    "Open the front door and let the dog out.",
    "Who wrote the novel Pride and Prejudice?",
    "Turn the volume down a little, please.",
    "My sister likes green, but I prefer blue.",
    "How far is the moon from the earth?",
    "Thank you, that was very helpful.",
]

# Utterances of about 2, 5 and 10 seconds in our Piper voice.
UTTERANCES = {
    "2 s": "Could you turn the kitchen lights off, please?",
    "5 s": "I would like to book a table for two people tomorrow evening at the Italian restaurant near the station.",
    "10 s": (
        "Please remind me to call my sister after lunch, then send an email to the team about the new schedule, "
        "and finally book a taxi to the airport for early on Friday morning so that I do not miss my flight."
    ),
}

CHUNK_SECONDS = 0.1


def spoken(text: str) -> bytes:
    """``text`` in our Piper voice, as mono PCM16 at 16 kHz (what a transcriber takes)."""
    from voice import audio
    from voice.stt import SAMPLE_RATE
    from voice.tts import get_engine

    chunks = list(get_engine("piper").synthesize(text))
    return audio.resample(b"".join(chunk.data for chunk in chunks), chunks[0].sample_rate, SAMPLE_RATE)


def words(text: str) -> str:
    """Lower case, no punctuation (an apostrophe inside a word stays), single spaces."""
    return " ".join(re.sub(r"[^\w\s']|'(?!\w)|(?<!\w)'", " ", text.lower().replace("-", " ")).split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Word errors (substitutions, deletions, insertions) over all reference words, after ``words``."""
    import jiwer

    return jiwer.wer([words(text) for text in references], [words(text) for text in hypotheses])


def release_to_final(transcriber, pcm: bytes) -> tuple[float, float]:
    """Seconds from the last piece of audio to the final transcript: (wall clock, CPU time of this process).

    On shared cores the wall clock depends on the neighbours; the CPU time
    does not, and over VOICE_STT_THREADS it is what the wall clock would be
    on idle cores (at best).
    """
    from voice.stt import SAMPLE_RATE
    from voice.stt.session import Utterance

    utterance = Utterance(transcriber)
    step = int(CHUNK_SECONDS * SAMPLE_RATE) * 2
    for start in range(0, len(pcm), step):
        utterance.add(pcm[start : start + step])
    released, cpu = time.perf_counter(), time.process_time()
    utterance.final()
    return time.perf_counter() - released, time.process_time() - cpu


def measure(quick: bool = False, transcriber=None) -> dict:
    """WER on Piper speech, release-to-final times, load time and real-time factor."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceproject.settings")
    import django

    django.setup()
    from voice import audio
    from voice.stt import SAMPLE_RATE, get_transcriber

    transcriber = transcriber or get_transcriber()
    # The cores may be shared (language model, speech, other processes): say how busy they were.
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    transcriber.prepare()
    load = time.perf_counter() - started

    sentences = SENTENCES[:5] if quick else SENTENCES
    heard, spent, seconds = [], 0.0, 0.0
    for sentence in sentences:
        pcm = spoken(sentence)
        started = time.perf_counter()
        heard.append(transcriber.transcribe(pcm, SAMPLE_RATE).text)
        spent += time.perf_counter() - started
        seconds += audio.pcm_duration(len(pcm), SAMPLE_RATE)

    repeats = 1 if quick else 5
    latency = {}
    for label, text in UTTERANCES.items():
        pcm = spoken(text)
        times = [release_to_final(transcriber, pcm) for _ in range(repeats)]
        latency[label] = {
            "audio": audio.pcm_duration(len(pcm), SAMPLE_RATE),
            "final": statistics.median(wall for wall, _cpu in times),
            # The fastest run is the one neighbours disturbed least.
            "best": min(wall for wall, _cpu in times),
            "cpu": statistics.median(cpu for _wall, cpu in times),
        }

    return {
        "engine": transcriber.name,
        "quick": quick,
        "cores": os.cpu_count(),
        "load_average": (load_before, os.getloadavg()[0]),
        "load": load,
        "sentences": len(sentences),
        "wer": word_error_rate(sentences, heard),
        "misheard": [(said, got) for said, got in zip(sentences, heard, strict=True) if words(said) != words(got)],
        "real_time_factor": spent / seconds,
        "release_to_final": latency,
    }


async def speak_to_first_audio(client, pcm: bytes, repeats: int) -> dict:
    """Over the wire: from speech.end to the final transcript, and to the reply's first audio."""
    import json

    from websockets.asyncio.client import connect

    from voice import protocol

    finals, firsts = [], []
    for _ in range(repeats):
        url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{client.new_conversation()}/"
        async with connect(url, additional_headers=client.headers(), max_size=None, open_timeout=30) as socket:
            await socket.send(json.dumps({"type": "speech.start", "format": "pcm_s16le", "sample_rate": 16000}))
            for offset in range(0, len(pcm), 3200):
                await socket.send(pcm[offset : offset + 3200])
            ended = time.perf_counter()
            await socket.send(json.dumps({"type": "speech.end"}))
            final = None
            async for frame in socket:
                if isinstance(frame, bytes):
                    protocol.AudioData.from_frame(frame)
                    firsts.append(time.perf_counter() - ended)
                    finals.append(final)
                    break
                event = json.loads(frame)
                if event["type"] == "transcript" and event["final"]:
                    final = time.perf_counter() - ended
                if event["type"] in ("error", "reply.done"):
                    break
    return {"final": statistics.median(finals), "first_audio": statistics.median(firsts), "runs": len(firsts)}


def tables(results: dict) -> list[tuple[str, str]]:
    from .tables import table

    latency = results["release_to_final"]
    rows = [
        [label, round(t["audio"], 1), round(t["final"] * 1000), round(t["best"] * 1000), round(t["cpu"] * 1000)]
        for label, t in latency.items()
    ]
    sections = [
        (
            f"Whisper base (faster-whisper, int8, {results['cores']} cores): word error rate "
            f"{results['wer']:.1%} on {results['sentences']} Piper-spoken sentences; load {results['load']:.2f} s; "
            f"real-time factor {results['real_time_factor']:.2f}",
            table(["utterance", "audio (s)", "end to final, median (ms)", "best (ms)", "CPU (ms)"], rows),
        )
    ]
    if "wire" in results:
        wire = results["wire"]
        sections.append(
            (
                "Spoken question to answer, over the wire (VOICE_RESPONDER=local)",
                table(
                    ["speech.end → final transcript (ms)", "speech.end → first audio of the reply (ms)"],
                    [[round(wire["final"] * 1000), round(wire["first_audio"] * 1000)]],
                ),
            )
        )
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A handful of sentences, one run each.")
    parser.add_argument("--beam-size", type=int, help="Whisper beam size (default: VOICE_STT_BEAM_SIZE).")
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceproject.settings")
    import django

    django.setup()
    from voice.stt.whisper import WhisperTranscriber

    transcriber = WhisperTranscriber(beam_size=options.beam_size) if options.beam_size else None
    results = measure(quick=options.quick, transcriber=transcriber)
    busy = " to ".join(f"{value:.1f}" for value in results["load_average"])
    print(f"engine:            {results['engine']} ({results['cores']} cores, load average {busy})")
    print(f"model load:        {results['load']:.2f} s")
    print(f"word error rate:   {results['wer']:.1%} over {results['sentences']} sentences")
    for said, got in results["misheard"]:
        print(f"  said {said!r}\n  got  {got!r}")
    print(f"real-time factor:  {results['real_time_factor']:.3f}")
    for label, figures in results["release_to_final"].items():
        print(
            f"release to final:  {figures['final']:.2f} s (best {figures['best']:.2f} s, CPU {figures['cpu']:.2f} s) "
            f"for {figures['audio']:.1f} s of speech ({label})"
        )


if __name__ == "__main__":
    main()
