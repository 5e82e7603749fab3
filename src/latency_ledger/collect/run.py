"""``latency-ledger run -- uvicorn myapp:app``: collect from an app without changing its code.

Contract: :func:`run_command` runs ``argv`` (after an optional leading ``--``) as a child
process whose ``PYTHONPATH`` starts with a directory holding our ``sitecustomize``, which
wraps every Starlette/FastAPI app's middleware stack in ``LedgerMiddleware`` (in the
spirit of ``opentelemetry-instrument``). Settings travel as ``LATENCY_LEDGER_*`` variables.
Returns the child's exit code (127 when the command is not found, 2 when none is given).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

BOOTSTRAP_DIR = Path(__file__).resolve().parent / "_bootstrap"


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with our bootstrap directory first on ``PYTHONPATH``."""
    env = dict(environ)
    existing = env.get("PYTHONPATH", "")
    parts = [str(BOOTSTRAP_DIR), *(p for p in existing.split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def run_command(argv: Sequence[str]) -> int:
    args = list(argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print(
            "latency-ledger run: give the command to run, e.g. -- uvicorn app:app", file=sys.stderr
        )
        return 2
    try:
        child = subprocess.Popen(args, env=child_environment(os.environ))
    except FileNotFoundError:
        print(f"latency-ledger run: command not found: {args[0]}", file=sys.stderr)
        return 127
    try:
        return child.wait()
    except KeyboardInterrupt:
        # the child got the same Ctrl-C from the terminal; let it shut down and flush
        child.send_signal(signal.SIGINT)
        return child.wait()
