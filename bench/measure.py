"""What the benchmark measures. Every figure comes from real processes over loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

import requests
from websockets.asyncio.client import connect

from voice import audio, protocol
from voice.tests.servers import ChatClient, DaphneServer

PCM_BYTES_PER_SECOND = 22050 * 2  # Piper: 22,050 Hz, 16-bit mono


def reply_text(sentences: int) -> str:
    return " ".join(
        f"This is sentence number {n} of the reply, and it carries a handful of ordinary words."
        for n in range(1, sentences + 1)
    )


def first_sentence(text: str) -> str:
    return text.split(". ")[0] + "."


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- The engine alone ----------------------------------------------------------
def engine_floor(engine, text: str, repeats: int) -> float:
    """Seconds for the engine alone to synthesize the first sentence of ``text`` (median)."""
    sentence = first_sentence(text)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _chunk in engine.synthesize(sentence):
            pass
        times.append(time.perf_counter() - started)
    return median(times)


def real_time_factor(engine, text: str, repeats: int) -> tuple[float, float]:
    """(synthesis seconds / audio seconds, audio seconds), medians."""
    factors, durations = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        seconds = sum(chunk.duration for chunk in engine.synthesize(text))
        factors.append((time.perf_counter() - started) / seconds)
        durations.append(seconds)
    return median(factors), median(durations)


# --- Over the wire ---------------------------------------------------------------
@dataclass
class Exchange:
    """One query and its reply, as the client saw it."""

    ttfa: float | None = None  # query sent -> first audio byte
    total: float | None = None  # query sent -> reply complete
    audio_seconds: float = 0.0
    wire_bytes: int = 0  # every frame of the reply, as received
    audio_frame_bytes: int = 0  # the frames that carry audio, headers included
    audio_bytes: int = 0
    chunks: int = 0
    chunks_announced: int = 0
    lost: int = 0
    error: str | None = None
    seqs: list[int] = field(default_factory=list)


async def ours(client: ChatClient, conversation: int, text: str, query: str = "") -> Exchange:
    """Our streaming path: binary frames (or base64 JSON with query="audio=base64")."""
    url = f"ws://127.0.0.1:{client.server.port}/ws/chat/{conversation}/" + (f"?{query}" if query else "")
    result = Exchange()
    async with connect(url, additional_headers=client.headers(), max_size=None, open_timeout=30) as socket:
        started = time.perf_counter()
        await socket.send(json.dumps({"type": "query", "text": text}))
        async for frame in socket:
            result.wire_bytes += len(frame)
            if isinstance(frame, bytes):
                chunk = protocol.AudioData.from_frame(frame)
                header, data = chunk.header, chunk.data
            else:
                event = json.loads(frame)
                if event["type"] == "audio.chunk":
                    header, data = event, base64.b64decode(event["data"])
                else:
                    if event["type"] == "audio.end":
                        result.chunks_announced = event["chunks"]
                    if event["type"] == "error":
                        result.error = event["code"]
                    if event["type"] == "reply.done":
                        result.total = time.perf_counter() - started
                        if event["status"] != "complete":
                            result.error = result.error or event["status"]
                        break
                    continue
            if result.ttfa is None:
                result.ttfa = time.perf_counter() - started
            result.audio_frame_bytes += len(frame)
            result.chunks += 1
            result.seqs.append(header["seq"])
            result.audio_bytes += len(data)
            result.audio_seconds += audio.pcm_duration(len(data), header["sample_rate"])
    result.lost = max(0, result.chunks_announced - result.chunks) + (result.seqs != list(range(len(result.seqs))))
    return result


async def baseline(server: DaphneServer, text: str) -> Exchange:
    """The usual approach: the whole reply, then one base64 JSON message."""
    result = Exchange()
    url = f"ws://127.0.0.1:{server.port}/ws/baseline/"
    async with connect(url, max_size=None, open_timeout=30) as socket:
        started = time.perf_counter()
        await socket.send(json.dumps({"text": text}))
        frame = await socket.recv()
        result.ttfa = result.total = time.perf_counter() - started
        result.wire_bytes = result.audio_frame_bytes = len(frame)
        wav = base64.b64decode(json.loads(frame)["data"])
        chunk = audio.read_wav(wav)
        result.audio_bytes = len(chunk.data)
        result.audio_seconds = chunk.duration
        result.chunks = result.chunks_announced = 1
    return result


def mp3_bytes_per_second(pcm: bytes, sample_rate: int = 22050, kbps: int = 64) -> float:
    """What the same audio costs as MP3 (a real encoder, for comparison)."""
    encoder = audio.Mp3Encoder(sample_rate, kbps=kbps)
    encoded = encoder.encode(pcm) + encoder.flush()
    return len(encoded) / (len(pcm) / (2 * sample_rate))


# --- Server memory ----------------------------------------------------------------
def rss_kib(pid: int) -> int:
    """A process's resident memory now, in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


class PeakMemory:
    """Samples a process's resident memory while a block runs."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.every = every
        self.peak_kib = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and all its descendants (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
    return total


def server_counters(server: DaphneServer, token: str) -> dict[str, float]:
    """The server's own Prometheus samples (GET /metrics with VOICE_METRICS_TOKEN), by name; a labelled one as
    ``name{label=value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    response = requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return {
        sample.name
        + (
            "{" + ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) + "}" if sample.labels else ""
        ): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model}


async def concurrent(clients: list[tuple[ChatClient, int]], text: str | list[str]) -> tuple[list[Exchange], float]:
    """Every client asks at once: the same ``text``, or each its own."""
    texts = [text] * len(clients) if isinstance(text, str) else text
    started = time.perf_counter()
    results = await asyncio.gather(
        *(ours(client, conversation, t) for (client, conversation), t in zip(clients, texts, strict=True)),
        return_exceptions=True,
    )
    wall = time.perf_counter() - started
    exchanges = []
    for result in results:
        if isinstance(result, BaseException):
            exchanges.append(Exchange(error=type(result).__name__))
        else:
            exchanges.append(result)
    return exchanges, wall
