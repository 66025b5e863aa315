"""Hands-free mode: the end-of-turn rule on natural pauses, and end of speech to the answer over the wire.

Offline (``turn_rule``): Piper speaks utterances that go on after a pause, two
sentences of one thought, or one sentence broken at a word, and the real
Silero VAD and turn detector (``voice.handsfree.detector``, default settings)
hear them in 100 ms pieces. A pause that ends the turn is a false cut-off; the
end-of-turn delay runs from the last voiced sample (|x| > 0.003) to the
decision.

Over the wire (``over_the_wire``): a client streams silence, a question and
silence in real time (100 ms frames, as a microphone does) to a real Daphne
in hands-free mode, and times from the moment the last voiced sample was sent
to the end of the turn, the final transcript and the reply's first audio. The
same question by push-to-talk (``speech.end`` sent as the audio ends) runs in
the same server, for comparison. The cost of an open microphone is the
server's CPU for minutes of room noise, streamed as fast as it takes it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import numpy as np

from .stt import spoken

FRAME = 3200  # 100 ms of 16 kHz PCM16
PAUSES_MS = (300, 500, 700, 1000)
# (first part, second part): one thought said with a pause in it.
THOUGHTS = [
    ("What is the weather going to be like tomorrow?", "Should I take an umbrella?"),
    ("How long should I boil an egg?", "I like the yolk a little runny."),
    ("Remind me to call my sister on Friday.", "She is moving to a new apartment."),
    ("Remind me to call", "my sister on Friday evening."),
    ("How long does it take", "to drive from the airport to the city centre?"),
    ("I would like to book a table for", "four people tomorrow night."),
    ("Can you tell me what to pack", "for a week of walking in the mountains?"),
]
# Finished questions and requests, said alone: how soon each rule ends the turn after the last word.
FINISHED = [
    "What is the capital of France?",
    "What time does the library close on Saturday?",
    "How do I reset my password?",
    "What should I cook for dinner tonight?",
    "Turn off the lights in the kitchen.",
    "Tell me a joke about penguins.",
    "Can you recommend a good book about the sea?",
    "Is it going to rain in London tomorrow?",
]
# About five seconds in our voice (bench.stt's "5 s" utterance): the targets are for one that long.
# Read back (VOICE_RESPONDER=readaloud is not what the bench server runs: the local model answers it, at
# length), and talked over.
BARGED_REPLY = "Tell me a long story about a lighthouse keeper and the storm that changed her life."
OVER = "Wait, tell me about the weekend in London instead."
QUESTION = "I would like to book a table for two people tomorrow evening at the Italian restaurant near the station."
# Voice to voice is timed on both kinds: a statement the judge leaves to the 800 ms rule, a question it ends sooner.
SPOKEN_TURNS = {"a statement": QUESTION, "a finished question": FINISHED[1]}


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768


def _voiced(pcm: bytes) -> tuple[int, int]:
    """Byte offsets of the first and after the last voiced sample (|x| > 0.003)."""
    loud = np.flatnonzero(np.abs(_samples(pcm)) > 0.003)
    return (2 * loud[0], 2 * (loud[-1] + 1)) if loud.size else (0, 0)


def _trimmed(pcm: bytes) -> bytes:
    """Without the silence around the voice."""
    start, end = _voiced(pcm)
    return pcm[start:end]


class _Rule:
    """One end-of-turn rule, as the server runs it: "silence" alone, or "judged" words (``completeness``)."""

    def __init__(self, name: str) -> None:
        from voice.handsfree.completeness import sentence_model
        from voice.stt import get_transcriber

        self.name = name
        self.transcriber, self.model = get_transcriber(), sentence_model()
        self.judging: list[float] = []
        self.verdicts: dict[str, int] = {}

    def ends(self, stream: bytes) -> list:
        """The turns ``stream`` makes, heard in 100 ms pieces; a judgement reaches the rule as much stream time
        after its quiet as transcribing and judging took here (one at a time, as the server does them)."""
        from voice.handsfree import completeness
        from voice.handsfree.detector import SpeechQuiet, TurnDetector, TurnEnded
        from voice.handsfree.vad import SileroStream
        from voice.stt import SAMPLE_RATE

        vad = SileroStream()
        detector = TurnDetector(vad.probability, on_gate=vad.reset)
        ends, due = [], []  # due: (stream byte at which the rule hears the judgement, quiet, verdict)
        for offset in range(0, len(stream), FRAME):
            # The judgement reaches the rule as soon as it is made, not at the next frame.
            cut_at = min(max(due[0][0], offset), offset + FRAME) if due else offset + FRAME
            events = detector.feed(stream[offset:cut_at])
            while due and due[0][0] <= cut_at:
                events += detector.judged(due[0][1], due[0][2])
                due.pop(0)
            events += detector.feed(stream[cut_at : offset + FRAME])
            for event in events:
                if isinstance(event, SpeechQuiet) and self.name == "judged":
                    began = time.perf_counter()
                    text = self.transcriber.transcribe(event.audio, SAMPLE_RATE, language="en").text
                    verdict = completeness.judge(text, self.model).verdict
                    took = time.perf_counter() - began
                    self.judging.append(took)
                    self.verdicts[verdict.value] = self.verdicts.get(verdict.value, 0) + 1
                    due.append((offset + FRAME + int(took * SAMPLE_RATE) * 2, event, verdict))
            ends += [event for event in events if isinstance(event, TurnEnded)]
        return ends


def turn_rule(quick: bool = False) -> dict:
    """False cut-offs on utterances with a pause in them, and the end-of-turn delay after finished questions.

    "silence": every turn waits VOICE_HANDSFREE_END_SILENCE_MS. "judged": at each quiet the turn so far is
    transcribed (Whisper) and its words judged (``voice.handsfree.completeness``, the bundled model).
    """
    from voice.stt import SAMPLE_RATE

    thoughts = THOUGHTS[2:4] if quick else THOUGHTS  # quick: one of each kind
    finished = FINISHED[:2] if quick else FINISHED
    parts = {text: _trimmed(spoken(text)) for text in [*finished, *(text for pair in thoughts for text in pair)]}
    lead, tail = bytes(2 * SAMPLE_RATE // 2), bytes(2 * SAMPLE_RATE * 3)
    results = {}
    for name in ("silence", "judged"):
        rule = _Rule(name)
        cut = {kind: {pause: 0 for pause in PAUSES_MS} for kind in ("sentences", "hesitation")}
        for first, second in thoughts:
            kind = "sentences" if first.endswith((".", "?")) else "hesitation"
            for pause in PAUSES_MS:
                voice = parts[first] + bytes(2 * SAMPLE_RATE * pause // 1000) + parts[second]
                if len(rule.ends(lead + voice + tail)) > 1:
                    cut[kind][pause] += 1
        delays = []
        for text in finished:
            ends = rule.ends(lead + parts[text] + tail)
            delays.append(ends[-1].at - (len(lead) + len(parts[text])) / 2 / SAMPLE_RATE)
        results[name] = {
            "cut_by_pause": cut,
            "cut": {kind: sum(by_pause.values()) for kind, by_pause in cut.items()},
            "utterances": {
                kind: sum(1 for first, _ in thoughts if first.endswith((".", "?")) == (kind == "sentences"))
                for kind in cut
            },
            "finished": len(finished),
            "delay_mean": statistics.mean(delays),
            "delay_median": statistics.median(delays),
            "delay_max": max(delays),
            "judging_median": statistics.median(rule.judging) if rule.judging else None,
            "verdicts": rule.verdicts,
            "model": rule.model is not None,
        }
    results["verdicts"] = results["judged"]["verdicts"]
    results["model"] = results["judged"]["model"]
    results["pauses"] = len(PAUSES_MS)
    return results


def _open(client, conversation: int | None = None):
    """A chat socket (of a new conversation by default), for asyncio (``ChatClient.open`` is the blocking kind)."""
    from websockets.asyncio.client import connect

    conversation = client.new_conversation() if conversation is None else conversation
    url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{conversation}/"
    return connect(url, additional_headers=client.headers(), max_size=None, open_timeout=30)


async def _hands_free_turn(client, pcm: bytes, *, to_the_end: bool = False) -> dict:
    """One question said hands-free, in real time: times from the last voiced sample sent.

    It ends at the reply's first audio, or ``to_the_end``, when the reply is stored (nothing runs after it).
    """
    from voice.stt import SAMPLE_RATE

    lead, tail = bytes(2 * SAMPLE_RATE // 2), bytes(2 * SAMPLE_RATE * 3)
    stream = lead + pcm + tail
    last_voiced = len(lead) + _voiced(pcm)[1]
    times: dict[str, float] = {}
    async with _open(client) as socket:
        await socket.send(json.dumps({"type": "listen.start", "format": "pcm_s16le", "sample_rate": SAMPLE_RATE}))

        async def read() -> None:
            async for frame in socket:
                now = time.perf_counter()
                if isinstance(frame, bytes):
                    times.setdefault("first_audio", now)
                    if to_the_end:
                        continue
                    return
                event = json.loads(frame)
                if event["type"] == "listen.turn" and event["phase"] == "ended":
                    times.setdefault("turn_end", now)
                elif event["type"] == "transcript" and event["final"]:
                    times.setdefault("final", now)
                elif event["type"] in ("error", "reply.done"):
                    return

        reader = asyncio.create_task(read())
        start = time.perf_counter()
        for offset in range(0, len(stream), FRAME):
            # Paced as a microphone: frame n leaves at n * 100 ms.
            await asyncio.sleep(max(0.0, start + offset / (2 * SAMPLE_RATE) - time.perf_counter()))
            await socket.send(stream[offset : offset + FRAME])
            if offset <= last_voiced < offset + FRAME:
                times["voice_end"] = time.perf_counter()
            if reader.done():
                break
        await asyncio.wait_for(reader, 60)
    return {name: times[name] - times["voice_end"] for name in ("turn_end", "final", "first_audio") if name in times}


async def _barge_in(client, reply_text: str, pcm: bytes) -> dict:
    """A typed question whose reply plays; the person then talks over it, in real time.

    Times from the first voiced sample sent to the reply paused in another tab of the conversation
    (``playback.duck``), and to that tab hearing it was interrupted.
    """
    from voice.stt import SAMPLE_RATE

    conversation = client.new_conversation()
    times: dict[str, float] = {}
    async with _open(client, conversation) as speaker, _open(client, conversation) as other:
        await speaker.send(json.dumps({"type": "listen.start", "format": "pcm_s16le", "sample_rate": SAMPLE_RATE}))
        await speaker.send(json.dumps({"type": "query", "text": reply_text}))
        while not isinstance(frame := await speaker.recv(), bytes):  # its first audio: it plays in that tab
            pass
        reply_id = json.loads(frame[4 : 4 + int.from_bytes(frame[:4], "big")])["message_id"]

        async def watch() -> None:
            async for frame in other:
                if isinstance(frame, bytes):
                    continue
                event = json.loads(frame)
                if event["type"] == "playback.duck" and event["on"]:
                    times.setdefault("duck", time.perf_counter())
                elif event["type"] == "message" and event["message"]["id"] == reply_id:
                    if event["message"]["status"] == "interrupted":
                        times.setdefault("interrupted", time.perf_counter())
                        return

        async def drain() -> None:
            async for _frame in speaker:
                pass

        watcher, drainer = asyncio.create_task(watch()), asyncio.create_task(drain())
        first_voiced = _voiced(pcm)[0]
        stream = pcm + bytes(2 * SAMPLE_RATE * 2)
        began = time.perf_counter()
        for offset in range(0, len(stream), FRAME):
            await asyncio.sleep(max(0.0, began + offset / (2 * SAMPLE_RATE) - time.perf_counter()))
            await speaker.send(stream[offset : offset + FRAME])
            if offset <= first_voiced < offset + FRAME:
                times["voice_start"] = time.perf_counter()
            if watcher.done():
                break
        await asyncio.wait_for(watcher, 30)
        drainer.cancel()
    return {name: times[name] - times["voice_start"] for name in ("duck", "interrupted") if name in times}


async def hands_free_turns(client, repeats: int) -> dict:
    """Each of SPOKEN_TURNS said hands-free ``repeats`` times: medians of the times from its last voiced sample."""
    # Not counted: starts the transcription process and its model.
    await _hands_free_turn(client, spoken(QUESTION), to_the_end=True)
    turns = {}
    for label, text in SPOKEN_TURNS.items():
        pcm = spoken(text)
        runs = [await _hands_free_turn(client, pcm) for _ in range(repeats)]
        turns[label] = {
            name: statistics.median(found) if (found := [run[name] for run in runs if name in run]) else None
            for name in ("turn_end", "final", "first_audio")
        }
    return turns


async def over_the_wire(client, repeats: int) -> dict:
    """Hands-free turns, the same question by push-to-talk, and the CPU an open microphone costs."""
    from . import stt

    turns = await hands_free_turns(client, repeats)
    microphone = await open_microphone_cost(client, 10 if repeats == 1 else 60)
    ptt = await stt.speak_to_first_audio(client, spoken(QUESTION), repeats)
    over = spoken(OVER)
    barge_ins = [await _barge_in(client, BARGED_REPLY, over) for _ in range(repeats)]
    return {
        "runs": repeats,
        "turns": turns,
        "push_to_talk": ptt,
        "open_microphone": microphone,
        "barge_in": {
            name: statistics.median(found) if (found := [run[name] for run in barge_ins if name in run]) else None
            for name in ("duck", "interrupted")
        },
    }


def in_the_page(server, repeats: int) -> dict | None:
    """End of turn to the first sound in the page: Chromium's fake microphone says each of SPOKEN_TURNS, hands-free.

    The page times it itself (``window.voiceLatency``, from the ``listen.turn`` that ends the turn to the
    first chunk it plays; the badge shows the same). None when Debian's chromium is not installed.
    """
    import tempfile
    import wave
    from pathlib import Path

    from voice.stt import SAMPLE_RATE
    from voice.tests.pages import CHROMIUM, CHROMIUM_ARGS, log_in

    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    turns = {}
    with tempfile.TemporaryDirectory(prefix="voice-bench-mic-") as folder, sync_playwright() as playwright:
        for label, text in SPOKEN_TURNS.items():
            path = Path(folder) / "question.wav"
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(SAMPLE_RATE)
                wav.writeframes(bytes(3 * SAMPLE_RATE) + spoken(text) + bytes(10 * SAMPLE_RATE))
            fake_microphone = [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={path}%noloop",
            ]
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *fake_microphone])
            latencies = []
            try:
                for _ in range(repeats):
                    context = browser.new_context()
                    context.grant_permissions(["microphone"], origin=server.url)
                    page = context.new_page()
                    log_in(page, server)
                    page.get_by_role("button", name="Hands-free").click()
                    page.wait_for_function("window.voiceLatency.length > 0", timeout=90_000)
                    latencies.append(page.evaluate("window.voiceLatency[0].ms") / 1000)
                    context.close()
            finally:
                browser.close()
            turns[label] = statistics.median(latencies)
    return {"runs": repeats, "turn_end_to_sound": turns}


async def open_microphone_cost(client, seconds: int) -> dict:
    """Server CPU for ``seconds`` of room noise on an open microphone (nothing is said), per hour of it.

    Streamed as a microphone does, in real time (the server drops audio that runs ahead of the clock), after
    as long with the socket listening and nothing sent: the difference is what the microphone costs.
    """
    from voice.stt import SAMPLE_RATE

    from .measure import tree_cpu_seconds

    rng = np.random.default_rng(11)
    noise = (rng.normal(0, 0.002, SAMPLE_RATE * seconds) * 32767).astype("<i2").tobytes()
    pid = client.server.process.pid
    async with _open(client) as socket:
        await socket.send(json.dumps({"type": "listen.start", "format": "pcm_s16le", "sample_rate": SAMPLE_RATE}))
        await socket.recv()  # listen.state
        # Once the server is quiet (its model processes started, earlier replies done), what it spends anyway
        # (timers, heartbeats), before and after, to take away.
        for _ in range(120):
            before = tree_cpu_seconds(pid)
            await asyncio.sleep(1)
            if tree_cpu_seconds(pid) - before < 0.02:
                break
        before = tree_cpu_seconds(pid)
        await asyncio.sleep(seconds / 2)
        idle = tree_cpu_seconds(pid) - before
        before = tree_cpu_seconds(pid)
        began = time.perf_counter()
        for n, offset in enumerate(range(0, len(noise), FRAME)):
            await asyncio.sleep(max(0.0, began + n * FRAME / (2 * SAMPLE_RATE) - time.perf_counter()))
            await socket.send(noise[offset : offset + FRAME])
        spent = tree_cpu_seconds(pid) - before
        before = tree_cpu_seconds(pid)
        await asyncio.sleep(seconds / 2)
        idle += tree_cpu_seconds(pid) - before
        await socket.send(json.dumps({"type": "listen.stop"}))
        while (event := json.loads(await socket.recv()))["type"] != "listen.state":
            assert event["type"] != "error", event
    return {
        "audio_seconds": seconds,
        "cpu_seconds": spent,
        "idle_cpu_seconds": idle,
        "cpu_per_hour": max(0.0, spent - idle) * 3600 / seconds,
    }


def _plus(value: float | None, more: float | None) -> float | None:
    return None if value is None or more is None else value + more


def _since(value: float | None, start: float | None) -> float | None:
    return None if value is None or start is None else value - start


def tables(results: dict) -> list[tuple[str, str]]:
    from .tables import table

    sections = []
    if "turn_rule" in results:
        rules = results["turn_rule"]

        def cut(rule: dict, kind: str) -> str:
            by_pause = " · ".join(str(n) for n in rule["cut_by_pause"][kind].values())
            return f"{rule['cut'][kind]} / {rule['utterances'][kind] * rules['pauses']} ({by_pause})"

        rows = []
        for name, title in (("silence", "800 ms of silence"), ("judged", "judged words (this release)")):
            rule = rules[name]
            judging = rule["judging_median"]
            rows.append(
                [
                    title,
                    cut(rule, "hesitation"),
                    cut(rule, "sentences"),
                    " / ".join(f"{rule[f'delay_{name}'] * 1000:.0f}" for name in ("median", "mean", "max")),
                    "–" if judging is None else f"{judging * 1000:.0f}",
                ]
            )
        verdicts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(rules["verdicts"].items()))
        sections.append(
            (
                "Hands-free end of turn (Silero VAD; Whisper and the bundled model judge the words at each quiet): "
                "utterances that go on after a pause of 300 · 500 · 700 · 1000 ms, cut there or not; delay from the "
                f"last voiced sample to the end of the turn, over {rules['judged']['finished']} finished questions "
                f"and requests said alone. Verdicts: {verdicts}"
                + ("" if rules["model"] else " (no model: punctuation alone)"),
                table(
                    [
                        "rule",
                        "broken sentence cut off",
                        "two sentences cut after the first",
                        "finished question → end of turn, median / mean / max (ms)",
                        "judging (ms)",
                    ],
                    rows,
                ),
            )
        )
    if "echo" in results:
        rows = [
            [
                "on" if cancel else "off",
                f"{gain_db} dB",
                level["replies"],
                f"{level['shortest']:.1f} / {level['mean_seconds']:.1f}",
                level["complete"],
                level["turns"],
                level["ducks"],
                len(level["fragments"]),
                "; ".join(f'"{text}"' for text in level["fragments"]) or "–",
                ", ".join(level.get("errors", [])) or "–",
            ]
            for cancel, levels in results["echo"].items()
            for gain_db, level in levels.items()
        ]
        sections.append(
            (
                "Hands-free with a speaker: replies read back, each a new text, played as player.js plays them and "
                "fed back into the microphone 80 ms late over a -60 dBFS floor, with the page's playback position; "
                "the levels side by side, the echo canceller on and off (its default)",
                table(
                    [
                        "canceller",
                        "echo",
                        "replies",
                        "seconds played, shortest / mean",
                        "ended complete",
                        "turns started",
                        "pauses",
                        "echo stored as a question",
                        "what was stored",
                        "errors",
                    ],
                    rows,
                ),
            )
        )
    if "wire" in results:
        wire, ptt = results["wire"], results["wire"]["push_to_talk"]

        def ms(value: float | None) -> str:
            return "–" if value is None else f"{value * 1000:.0f}"

        undrafted = results.get("undrafted", {})
        rows = []
        for label, turn in wire["turns"].items():
            without = undrafted.get(label, {})
            rows.append(
                [
                    f"hands-free, {label}",
                    ms(turn["turn_end"]),
                    ms(turn["final"]),
                    ms(turn["first_audio"]),
                    ms(_since(turn["first_audio"], turn["turn_end"])),
                    ms(_since(without.get("first_audio"), without.get("turn_end"))),
                ]
            )
        rows.append(["push-to-talk, from speech.end", "0", ms(ptt["final"]), ms(ptt["first_audio"]), "", ""])
        sections.append(
            (
                "Hands-free vs push-to-talk over the wire (VOICE_RESPONDER=local, one user, "
                f"median of {wire['runs']}): hands-free from the last voiced sample, "
                "push-to-talk from speech.end sent as the audio ends; the reply drafted from the early transcript "
                "(the default) and, on a second server, not (VOICE_HANDSFREE_DRAFT_REPLIES=false)",
                table(
                    [
                        "mode",
                        "→ end of turn (ms)",
                        "→ final transcript (ms)",
                        "→ first audio (ms)",
                        "end of turn → first audio (ms)",
                        "the same, not drafted (ms)",
                    ],
                    rows,
                ),
            )
        )
        page = results.get("page")
        if page:
            sections.append(
                (
                    f"Hands-free in Chromium (fake microphone, median of {page['runs']}): the page's own figure, "
                    "from the end of the turn to the first sound it plays",
                    table(
                        [
                            "said",
                            "end of turn → first sound (ms)",
                            "last voiced sample → first sound (ms), with the wire's delay",
                        ],
                        [
                            [label, ms(sound), ms(_plus(wire["turns"][label]["turn_end"], sound))]
                            for label, sound in page["turn_end_to_sound"].items()
                        ],
                    ),
                )
            )
        barge = wire["barge_in"]
        sections.append(
            (
                "Barge-in by voice (local model, median of the same runs): from the first voiced sample of a person "
                "talking over a reply, to another tab of the conversation",
                table(
                    ["→ the reply paused there (ms)", "→ the reply stopped, stored interrupted (ms)"],
                    [[ms(barge["duck"]), ms(barge["interrupted"])]],
                ),
            )
        )
        mic = wire["open_microphone"]
        sections.append(
            (
                "An open microphone with nothing said (room noise at −54 dBFS)",
                table(
                    [
                        "audio streamed (s)",
                        "server CPU with it (s)",
                        "the same time without (s)",
                        "the microphone's CPU per hour of it (s)",
                    ],
                    [
                        [
                            mic["audio_seconds"],
                            f"{mic['cpu_seconds']:.2f}",
                            f"{mic['idle_cpu_seconds']:.2f}",
                            f"{mic['cpu_per_hour']:.0f}",
                        ]
                    ],
                ),
            )
        )
    return sections


ECHO_LEVELS_DB = (-9, -20, -30)
# Read back (VOICE_RESPONDER=readaloud): replies of 5 to 8 s in our voice, a new text every time.
ECHO_REPLIES = [
    f"{opening} The {thing} opens at {hour} in the morning and closes at {hour + 9} in the evening, "
    f"every day except {day}."
    for opening, thing, hour, day in (
        ("Here is what I found.", "library", 9, "Monday"),
        ("Good question.", "museum", 10, "Tuesday"),
        ("Let me check.", "swimming pool", 7, "Sunday"),
        ("According to the website,", "bakery", 6, "Wednesday"),
        ("Sure.", "post office", 8, "Saturday"),
        ("I looked it up.", "garden centre", 9, "Thursday"),
        ("Right.", "town hall", 8, "Friday"),
        ("Of course.", "market", 7, "Monday"),
        ("Here you go.", "gallery", 10, "Wednesday"),
        ("It depends on the season, but usually", "zoo", 9, "Christmas Day"),
    )
] + [
    f"Tomorrow in {city} will be {weather}, with a high of {high} degrees and {wind} in the afternoon."
    for city, weather, high, wind in (
        ("Paris", "sunny and warm", 24, "a light breeze"),
        ("London", "cloudy with some rain", 16, "a strong wind"),
        ("Madrid", "hot and dry", 33, "hardly any wind"),
        ("Oslo", "cold and bright", 4, "a north wind"),
        ("Rome", "mild with clear skies", 21, "a gentle breeze"),
        ("Berlin", "grey and damp", 12, "gusts of wind"),
        ("Lisbon", "warm with a few clouds", 23, "a sea breeze"),
        ("Dublin", "wet and windy", 13, "heavy showers"),
        ("Vienna", "fresh and sunny", 18, "a light wind"),
        ("Prague", "foggy in the morning", 15, "sunshine"),
    )
]


async def _reply_through_a_speaker(socket, page, text: str, *, began: float) -> dict:
    """Ask ``text`` (read back) on a listening ``socket`` whose microphone streams all the time (``page``, a
    ``SpeakerPage``, from ``began``); play the reply and listen until 1.5 s after its end."""
    from voice.tests.servers import decoded

    inbox: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        async for message in socket:
            inbox.put_nowait(decoded(message))

    reader = asyncio.create_task(read())
    await socket.send(json.dumps({"type": "query", "text": text}))
    fragments, turns, ducks, errors = [], 0, 0, []
    try:
        async with asyncio.timeout(120):  # reported as "timed out", not raised: the other replies go on
            while not page.played_out(1.5):
                while not inbox.empty():
                    frame = inbox.get_nowait()
                    page.receive(frame)
                    if frame[0] != "event":
                        continue
                    event = frame[1]
                    found = event["message"] if event["type"] == "message" else {}
                    if event["type"] == "error":
                        errors.append(event["code"])
                    elif event["type"] == "playback.duck" and event["message_id"] == page.reply:
                        ducks += event["on"]
                    elif event["type"] == "listen.turn" and event["phase"] == "speaking":
                        turns += 1
                    elif event["type"] == "message" and found["role"] == "user":
                        if (found.get("client_id") or "").startswith("h-"):
                            fragments.append(found["text"])
                pcm, position = page.capture()
                await asyncio.sleep(max(0.0, began + page.frames * 0.1 - time.monotonic()))  # captured: send it
                await socket.send(pcm)
                if position is not None:
                    await socket.send(json.dumps(position))
        status = page.stopped_as or page.done
    except TimeoutError:
        status = "timed out"
    finally:
        reader.cancel()
    return {
        "status": status,
        "seconds": page.seconds,
        "fragments": fragments,
        "turns": turns,
        "ducks": ducks,
        "errors": errors,
    }


async def echo_through_a_speaker(client, replies: int) -> dict:
    """``replies`` replies at each echo level, the levels side by side (one conversation each, at once)."""

    from voice.tests.speaker import SpeakerPage, along

    async def level(gain_db: float) -> list[dict]:
        async with _open(client) as socket:
            await socket.send(json.dumps({"type": "listen.start", "format": "pcm_s16le", "sample_rate": 16000}))
            while json.loads(await socket.recv())["type"] != "listen.state":
                pass
            page, began, results = SpeakerPage(along(gain_db, 0.08), seed=-round(gain_db)), time.monotonic(), []
            for text in ECHO_REPLIES[:replies]:
                page.next_reply()
                results.append(await _reply_through_a_speaker(socket, page, text, began=began))
            return results

    runs = await asyncio.gather(*(level(gain_db) for gain_db in ECHO_LEVELS_DB))
    return {
        gain_db: {
            "replies": len(results),
            "complete": sum(r["status"] == "complete" for r in results),
            "fragments": [text for r in results for text in r["fragments"]],
            "turns": sum(r["turns"] for r in results),
            "ducks": sum(r["ducks"] for r in results),
            "errors": [code for r in results for code in r["errors"]],
            "shortest": min(r["seconds"] for r in results),
            "mean_seconds": statistics.mean(r["seconds"] for r in results),
        }
        for gain_db, results in zip(ECHO_LEVELS_DB, runs, strict=True)
    }
