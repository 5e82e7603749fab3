"""What the server benchmarks share: a free port, the one-table SQLite file, wrk, span counts.

Imported by bench_collect.py and bench_django.py, which run as scripts (their folder is on
sys.path) and as server modules started with --app-dir / --chdir on this folder.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO item VALUES (?, ?)", [(i, f"item {i}") for i in range(100)])


def wrk(url: str, duration: float) -> float:
    """Requests/s from wrk pinned to CPU 1 (the server is pinned to CPU 0)."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{int(duration)}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk: unexpected output:\n{out}")
    return float(match.group(1))


def count_spans(out_dir: Path) -> int:
    total = 0
    for path in out_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            for rs in json.loads(line).get("resourceSpans", ()):
                for ss in rs.get("scopeSpans", ()):
                    total += len(ss.get("spans", ()))
    return total
