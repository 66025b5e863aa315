"""Real server processes for end-to-end tests and benchmarks.

``Site`` is a deployment: a data directory (file database, stored audio) and
environment, migrated, with a demo login. ``DaphneServer`` runs the ASGI
application in its own Daphne process, which can be stopped and started again
on the same port (to drop every socket, as a crash or deploy would).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "demo-password-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = Path(data_dir)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "voiceproject.settings",
            "DJANGO_DATA_DIR": str(self.data_dir),
            "DJANGO_SECRET_KEY": "not-secret-test-key-" + "x" * 40,
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.env.setdefault("DATABASE_URL", f"sqlite:///{self.data_dir / 'db.sqlite3'}")

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True, text=True
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def setup(self, username: str = "demo") -> Site:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        self.manage("demouser", "--username", username, "--password", PASSWORD)
        return self


class DaphneServer:
    def __init__(self, site: Site, port: int | None = None) -> None:
        self.site = site
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = site.data_dir / f"daphne-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> DaphneServer:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "voiceproject.asgi:application"],
            cwd=BASE_DIR,
            env=self.site.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Daphne exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Daphne did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
