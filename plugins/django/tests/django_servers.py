"""Real servers for the Django tests: gunicorn (WSGI, gthread) and uvicorn (ASGI) processes.

``DjangoServer(kind, target, cwd, env)`` starts ``gunicorn`` or ``uvicorn`` on a free
127.0.0.1 port in a subprocess, waits until it accepts connections, and stops it
gracefully on exit (SIGTERM for gunicorn, SIGINT for uvicorn) so the collector flushes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

APPS = Path(__file__).resolve().parent / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_up() -> bool:
    try:
        import psycopg

        psycopg.connect(
            "host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=2
        ).close()
    except Exception:
        return False
    return True


class DjangoServer:
    def __init__(
        self,
        kind: str,
        target: str,
        *,
        cwd: Path = APPS,
        env: dict[str, str] | None = None,
        threads: int = 4,
    ) -> None:
        self.kind = kind
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        if kind == "gunicorn":
            self.cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(cwd), target]
            self.cmd += ["-b", f"127.0.0.1:{self.port}", "-w", "1", "-k", "gthread"]
            self.cmd += ["--threads", str(threads), "--log-level", "warning"]
        elif kind == "uvicorn":
            self.cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(cwd), target]
            self.cmd += ["--port", str(self.port), "--lifespan", "off", "--log-level", "warning"]
            self.cmd += ["--no-access-log"]
        else:
            raise ValueError(kind)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> DjangoServer:
        self.proc = subprocess.Popen(self.cmd, env=self.env)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    self.proc.wait()
                    raise RuntimeError(f"{' '.join(self.cmd)} did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM if self.kind == "gunicorn" else signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
