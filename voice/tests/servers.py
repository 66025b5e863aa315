"""Real processes for end-to-end tests and benchmarks.

``Site`` is one deployment: a data directory, its database (a file SQLite, or
a fresh PostgreSQL database of its own) and its environment, migrated, with a
demo login. ``DaphneServer`` and ``WorkerProcess`` run it as a real deployment
does; ``RedisServer`` is a private Redis that can be stopped and started again;
``ChatClient`` talks to a server over real HTTP and WebSockets.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import closing
from dataclasses import astuple
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from websockets.sync.client import connect as ws_connect

from voice import protocol

BASE_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "demo-password-for-tests"
POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_http(url: str) -> bool:
    """Whether ``url`` answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(check, timeout: float, what: str, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout} s:\n{log()}")


class Site:
    """A deployment's data and settings. ``database="postgres"`` gets a fresh database, dropped by ``destroy``."""

    def __init__(self, data_dir: Path, database: str = "inherit", **env: str) -> None:
        self.data_dir = Path(data_dir)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "voiceproject.settings",
            "DJANGO_DATA_DIR": str(self.data_dir),
            "DJANGO_SECRET_KEY": "not-secret-test-key-" + "x" * 40,
            "CHANNEL_LAYER_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
            "PYTHONUNBUFFERED": "1",
            # Replies read the query back unless a test asks for a model.
            "VOICE_RESPONDER": "readaloud",
            # Tests ask faster than people do.
            "VOICE_CHAT_RATE_LIMIT": "0",
            # Live tests and the bench play many people with the one demo account: what one account may hold at
            # once would refuse them (each share has tests of its own, in this process).
            "VOICE_USER_REPLIES": "0",
            "VOICE_SOCKETS_PER_USER": "0",
            "VOICE_STT_USER_JOBS": "0",
            "VOICE_CONTROL_RATE_LIMIT": "0",
            "VOICE_API_CHARS_PER_MINUTE": "0",
            **env,
        }
        inherited = self.env.get("DATABASE_URL", "")
        self.pg_database: str | None = None
        if database == "postgres" or (database == "inherit" and inherited.startswith("postgres")):
            # Never the developer's database: one of our own.
            self.pg_database = f"voice_site_{uuid.uuid4().hex[:10]}"
            self._postgres(f'CREATE DATABASE "{self.pg_database}"')
            self.env["DATABASE_URL"] = urlunsplit(urlsplit(POSTGRES)._replace(path=f"/{self.pg_database}"))
        elif database in ("sqlite", "inherit"):
            self.env["DATABASE_URL"] = f"sqlite:///{self.data_dir / 'db.sqlite3'}"

    @staticmethod
    def _postgres(statement: str) -> None:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(statement)

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True, text=True
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def fetch(self, sql: str, *params) -> list[tuple]:
        """Rows of a query on this site's database, straight from the database (no Django set-up)."""
        url = self.env["DATABASE_URL"]
        if url.startswith("sqlite"):
            import sqlite3

            with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10)) as connection:
                return connection.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(url) as connection:
            return connection.execute(sql, params).fetchall()

    def shell(self, code: str) -> str:
        """Run Python with Django set up for this site; returns what it printed."""
        return self.manage("shell", "--no-imports", "-c", code).strip()

    def setup(self, username: str = "demo") -> Site:
        """Migrated, with a demo login: the first site of a kind in this process runs manage.py for it
        (seconds), the next ones start from a copy of its database (milliseconds)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        kind = (self.env["DATABASE_URL"].partition(":")[0], username)
        if kind in _set_up:
            self._copy_from(_set_up[kind])
            return self
        self.manage("migrate", "--noinput")
        self.manage("demouser", "--username", username, "--password", PASSWORD)
        _set_up[kind] = self._keep_a_copy()
        return self

    def _keep_a_copy(self) -> str:
        """A copy of this just-set-up database, dropped when this process exits; its path or name."""
        if self.pg_database:
            import psycopg

            copy = f"voice_site_template_{uuid.uuid4().hex[:10]}"
            # The backends of manage.py's connections may take a moment to go; until then it cannot be copied.
            for _attempt in range(100):
                try:
                    self._postgres(f'CREATE DATABASE "{copy}" TEMPLATE "{self.pg_database}"')
                    break
                except psycopg.errors.ObjectInUse:
                    time.sleep(0.05)
            else:
                raise RuntimeError(f"{self.pg_database} is still in use: it cannot be copied")
            atexit.register(self._postgres, f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
            return copy
        folder = tempfile.mkdtemp(prefix="voice-site-template-")
        atexit.register(shutil.rmtree, folder, True)
        copy = str(Path(folder) / "db.sqlite3")
        _sqlite_copy(self._sqlite_path(), copy)
        return copy

    def _copy_from(self, copy: str) -> None:
        if self.pg_database:
            self._postgres(f'DROP DATABASE "{self.pg_database}"')
            self._postgres(f'CREATE DATABASE "{self.pg_database}" TEMPLATE "{copy}"')
        else:
            _sqlite_copy(copy, self._sqlite_path())

    def _sqlite_path(self) -> str:
        return self.env["DATABASE_URL"].removeprefix("sqlite:///")

    def destroy(self) -> None:
        if self.pg_database:
            self._postgres(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')


# Set-up databases to copy, by kind ("sqlite", "postgres") and demo username: made once per process.
_set_up: dict[tuple[str, str], str] = {}


def _sqlite_copy(source: str, target: str) -> None:
    """A consistent copy, whatever the source's journal (WAL) holds."""
    import sqlite3

    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(target)) as copy:
        original.backup(copy)


class Process:
    """A child process with its output in a log file."""

    def __init__(self, site: Site, name: str) -> None:
        self.site = site
        self.process: subprocess.Popen | None = None
        self.log_path = site.data_dir / f"{name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the process serves yet."""
        raise NotImplementedError

    def start(self, timeout: float = 60):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=BASE_DIR, env=self.site.env, stdout=log, stderr=subprocess.STDOUT
            )

        def ready_or_dead() -> bool:
            if not self.running():
                raise RuntimeError(f"{self.command()[:3]} exited:\n{self.log()}")
            return self.ready()

        try:
            wait_until(ready_or_dead, timeout, f"{type(self).__name__} not ready", self.log)
        except BaseException:
            self.kill()  # never left running behind a failed test
            raise
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """As a crash would: no chance to clean up."""
        if self.running():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


class DaphneServer(Process):
    def __init__(
        self,
        site: Site,
        port: int | None = None,
        application: str = "voiceproject.asgi:application",
        options: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.application = application
        self.options = options
        super().__init__(site, f"daphne-{self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            *self.options,
            self.application,
        ]

    def ready(self) -> bool:
        return answers_http(f"{self.url}/accounts/login/")


class WorkerProcess(Process):
    """``manage.py runworker voice-replies``."""

    count = 0

    def __init__(self, site: Site) -> None:
        WorkerProcess.count += 1
        super().__init__(site, f"worker-{WorkerProcess.count}")

    def command(self) -> list[str]:
        return [sys.executable, "manage.py", "runworker", "voice-replies"]

    def ready(self) -> bool:
        # Logged by the speech engine's warm-up, once the worker has loaded.
        return "ready with voice" in self.log()


class RedisServer(Process):
    """A private Redis, so that tests can take it away."""

    def __init__(self, site: Site, port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__(site, f"redis-{self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class ChatClient:
    """A logged-in user of one server, over real HTTP and WebSockets."""

    def __init__(self, server: DaphneServer, username: str = "demo", password: str = PASSWORD) -> None:
        self.server = server
        self.http = requests.Session()
        self.http.get(f"{server.url}/accounts/login/").raise_for_status()
        response = self.http.post(
            f"{server.url}/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]},
            headers={"Referer": f"{server.url}/accounts/login/"},
            allow_redirects=False,
        )
        if response.status_code != 302:
            raise RuntimeError(f"Login failed ({response.status_code})")

    def new_conversation(self) -> int:
        response = self.http.post(f"{self.server.url}/c/", headers={"X-CSRFToken": self.http.cookies["csrftoken"]})
        response.raise_for_status()
        return response.json()["id"]

    def headers(self) -> dict[str, str]:
        """What a browser sends on its WebSocket handshake: the session cookie and its origin."""
        cookies = "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())
        return {"Cookie": cookies, "Origin": self.server.url}

    def open(self, conversation_id: int, query: str = ""):
        url = f"ws://127.0.0.1:{self.server.port}/ws/chat/{conversation_id}/" + (f"?{query}" if query else "")
        return ws_connect(
            url,
            additional_headers=self.headers(),
            max_size=None,
            open_timeout=10,
        )


def send_query(socket_, text: str) -> None:
    socket_.send(json.dumps({"type": "query", "text": text}))


def read_frame(socket_, timeout: float) -> tuple:
    """("event", dict) or ("audio", header, bytes), as the test helpers of the consumer."""
    return decoded(socket_.recv(timeout=timeout))


def decoded(message: str | bytes) -> tuple:
    """A socket's message as ("event", dict) or ("audio", header, bytes)."""
    if isinstance(message, bytes):
        return ("audio", *astuple(protocol.AudioData.from_frame(message)))
    return ("event", json.loads(message))


def read_reply(socket_, timeout: float = 30) -> list[tuple]:
    """Every frame up to and including a reply.done."""
    frames = []
    deadline = time.monotonic() + timeout
    while True:
        frame = read_frame(socket_, max(0.01, deadline - time.monotonic()))
        frames.append(frame)
        if frame[0] == "event" and frame[1]["type"] == "reply.done":
            return frames
