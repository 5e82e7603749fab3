"""Seed and serve the Django example shop: the commands ``latency-ledger demo --app django`` runs.

Contract: :func:`seed_command` creates and fills the tables (idempotent);
:func:`server_command` serves the shop on 127.0.0.1:``port`` under gunicorn (WSGI,
``gthread``: Django's usual deployment) or uvicorn (ASGI); :func:`environment` is the
process environment for both: instrumented (``LATENCY_LEDGER=1``), traces to
``traces_dir``, the rates service at ``rates_url``, SQLite at ``sqlite_path`` unless
``DJANGO_DATABASE_URL`` is already set. ``GET /health`` answers once the server is up;
stop gunicorn with SIGTERM and uvicorn with SIGINT, both flush the collector at exit.

Run by hand (rates service first, see examples/README.md)::

    python examples/django/serve.py --port 8000 --rates http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVERS = ("gunicorn", "uvicorn")


def seed_command() -> list[str]:
    return [sys.executable, str(HERE / "manage.py"), "seed"]


def server_command(port: int, *, server: str = "gunicorn", threads: int = 8) -> list[str]:
    if server == "gunicorn":
        return [
            sys.executable, "-m", "gunicorn", "--chdir", str(HERE),
            "django_shop.wsgi:application", "-b", f"127.0.0.1:{port}",
            "-w", "1", "-k", "gthread", "--threads", str(threads), "--log-level", "warning",
        ]  # fmt: skip
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "--app-dir", str(HERE),
            "django_shop.asgi:application", "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    raise ValueError(f"server: one of {', '.join(SERVERS)}, not {server!r}")


def environment(
    base: Mapping[str, str],
    *,
    traces_dir: Path,
    rates_url: str,
    sqlite_path: Path,
    instrumented: bool = True,
) -> dict[str, str]:
    env = dict(base)
    env["DJANGO_SETTINGS_MODULE"] = "django_shop.settings"
    env["SHOP_DOWNSTREAM_URL"] = rates_url
    env["LATENCY_LEDGER_OUTPUT_DIR"] = str(traces_dir)
    env.setdefault("OTEL_SERVICE_NAME", "django-shop")
    env.setdefault("SHOP_SQLITE_PATH", str(sqlite_path))
    if instrumented:
        env["LATENCY_LEDGER"] = "1"
    else:
        env.pop("LATENCY_LEDGER", None)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--server", choices=SERVERS, default="gunicorn")
    parser.add_argument("--rates", default="http://127.0.0.1:8001", help="the rates service")
    parser.add_argument("--traces", type=Path, default=Path("ledger-traces"))
    parser.add_argument("--bare", action="store_true", help="without the ledger middleware")
    args = parser.parse_args(argv)
    env = environment(
        os.environ,
        traces_dir=args.traces.resolve(),
        rates_url=args.rates,
        sqlite_path=Path(tempfile.gettempdir()) / "latency-ledger-django-shop.sqlite3",
        instrumented=not args.bare,
    )
    subprocess.run(seed_command(), env=env, check=True)
    return subprocess.call(server_command(args.port, server=args.server), env=env)


if __name__ == "__main__":
    sys.exit(main())
