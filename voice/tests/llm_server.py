"""A small OpenAI-compatible server that misbehaves on request, for the openai responder's failure tests.

The request's ``model`` names the scenario. Every streamed chunk is written
and flushed on its own, as real servers do, and the server records what it
saw (requests, and whether the client hung up mid-stream).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "sk-live-do-not-leak-1234"  # appears in error bodies: must never reach a client


def chunk(content=None, **delta) -> dict:
    if content is not None:
        delta["content"] = content
    return {"id": "c1", "object": "chat.completion.chunk", "model": "fake", "choices": [{"index": 0, "delta": delta}]}


SCENARIOS = {
    "hello": [chunk("Hello "), chunk("there. "), chunk("How are you?")],
    "keepalive": [": ping", chunk("Still "), ": ping", chunk("here."), {"choices": [], "usage": {"total_tokens": 3}}],
    "reasoning": [
        chunk(reasoning_content="Field one. "),
        chunk(reasoning="Field two. "),
        chunk("<thi"),
        chunk("nk>Inline, split.</th"),
        chunk("ink>Hello "),
        chunk("there."),
    ],
    "error-midstream": [chunk("Half a "), {"error": {"message": f"boom, key {SECRET}", "code": 500}}],
    "vllm-error": [
        chunk("Half a "),
        {"object": "error", "message": f"engine died {SECRET}", "type": "InternalServerError", "code": 500},
    ],
    "malformed": [chunk("Half a "), "data: {not json"],
    "stall": [chunk("Half a "), ("sleep", 30)],
    "silent": [("sleep", 30)],
    "slow": [chunk(f"Word {n}. ") for n in range(200)],
}
STATUS = {
    "rate-limited": (429, {"error": {"message": f"Rate limit reached for {SECRET}", "type": "rate_limit"}}),
    "server-error": (500, {"error": {"message": f"Internal error at http://10.0.0.5/{SECRET}"}}),
    "bad-request": (400, {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}),
}
SLOW_GAP = 0.05


class FakeModelServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.hung_up = threading.Event()  # a client closed a stream before its end
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                scenario = body["model"]
                if scenario in STATUS:
                    status, payload = STATUS[scenario]
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for item in SCENARIOS[scenario]:
                        self._emit(item)
                        if scenario == "slow":
                            time.sleep(SLOW_GAP)
                    self._line("data: [DONE]")
                except (BrokenPipeError, ConnectionResetError):
                    owner.hung_up.set()
                self.close_connection = True

            def _emit(self, item) -> None:
                if isinstance(item, tuple):
                    # Sleep in short steps, noticing a client that hangs up.
                    deadline = time.monotonic() + item[1]
                    while time.monotonic() < deadline:
                        time.sleep(0.05)
                        self._line(": waiting")
                elif isinstance(item, str):
                    self._line(item)
                else:
                    self._line("data: " + json.dumps(item))

            def _line(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\n\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Polled often, so that shutdown() at the end of a test returns at once, not after up to 0.5 s.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
