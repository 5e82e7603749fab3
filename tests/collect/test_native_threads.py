"""Known answer against a real uvicorn server: CPU that argon2's own threads burn for a
request is charged to it, as native; a pure-Python burn is unaffected.

Expected, written before measuring (issue 9, "all the CPU the process burns is accounted
for"): an endpoint hashing with argon2-cffi at parallelism 4 (argon2 starts 4 threads per
hash; the calling thread's clock sees ~5% of the work), served alone to one client at a
time, in an ``async def`` endpoint and a ``def`` one:

- every request (but the run's first) is charged native threads' CPU, and the mean
  charged is within 25% of the truth the app measures itself around each hash (the
  process's CPU less the calling thread's: with one request in flight, argon2's threads);
- the wait for those threads is booked ``native``: at p50, native is at least 80% of the
  smaller of the threads' CPU and the time the hash kept its caller off its CPU (both as
  the app measured them; without the charge native would be the caller's ~5%).
  (Written first as "waiting at most a fifth of own time"; on this loaded 2-core machine
  the lanes themselves waited for a core, so the hash's wall time exceeded their CPU and
  that stretch is waiting for the OS, which the ledger books as waiting by design.)
- the CPU booked to requests then covers the process's CPU but a small share: the
  unbooked share is under 35% (without the charge it would be ~85%); with the SQLite
  endpoint below in the mix, under 20% (added later: measured 0.11 with that statement's
  CPU counted as booked, 0.30 without);
- a pure-Python 30 ms burn in the same run is charged none (under 5% of its CPU) and
  books its CPU as interpreter;
- a CPU-heavy SQLite statement (the engine runs on the calling thread) is booked as
  database at least 80% of its CPU measured around it, is charged no native threads, and
  its CPU counts as booked: it is in the same mix as the unbooked-share check above
  (before that CPU counted, the shop demo on SQLite read ~90% unbooked).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import pytest

from latency_ledger.analyze import analyze

pytest.importorskip("argon2")
pytestmark = [pytest.mark.server]
REQUESTS = 10  # per endpoint, interleaved


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, app_process: Callable[..., Any]
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("argon2")
    env = {"LATENCY_LEDGER_OUTPUT_DIR": str(out)}
    with app_process("argon2_app:app", env=env) as app:
        truth = app.interleave(
            ["POST /hash", "POST /hash_sync", "GET /burn", "GET /sqlite"], REQUESTS
        )
    report = analyze([out])
    return {"truth": truth, "report": report, "stats": {e.endpoint: e for e in report.endpoints}}


@pytest.mark.parametrize("endpoint", ["POST /hash", "POST /hash_sync"])
def test_argon2s_threads_cpu_is_charged_to_the_request_as_native(
    served: dict[str, Any], endpoint: str
) -> None:
    stats = served["stats"][endpoint]
    lanes = [t["process_cpu_ns"] - t["thread_cpu_ns"] for t in served["truth"][endpoint]]
    truth = statistics.mean(lanes)
    threads = stats.native_threads
    parts = stats.ledger_ns["p50"]
    got = {k: round(v / 1e6, 2) for k, v in parts.items()}, truth / 1e6, threads
    assert threads is not None, got
    # the run's first request may not be: the collector's own start-up (importing the
    # profiler, ~65 ms here) is subtracted as wall time, more than the CPU it took
    assert threads.requests >= REQUESTS - 1, got
    assert abs(threads.cpu_ns_per_request - truth) <= 0.25 * truth, got
    assert threads.cpu_ns_per_request <= threads.max_ns_per_request
    off_cpu = statistics.median(
        t["wall_ns"] - t["thread_cpu_ns"] for t in served["truth"][endpoint]
    )
    assert parts["native"] >= 0.8 * min(truth, off_cpu), (got, off_cpu / 1e6)
    assert stats.verdict is not None
    assert stats.verdict.label != "migration_could_pay"


def test_a_python_burn_in_the_same_run_is_charged_no_native_threads(
    served: dict[str, Any],
) -> None:
    stats = served["stats"]["GET /burn"]
    burn = statistics.median(t["thread_cpu_ns"] for t in served["truth"]["GET /burn"])
    parts = stats.ledger_ns["p50"]
    charged = stats.native_threads.cpu_ns_per_request if stats.native_threads else 0
    got = {k: round(v / 1e6, 2) for k, v in parts.items()}, burn / 1e6, charged
    assert charged <= 0.05 * burn, got
    assert parts["interpreter"] >= 0.85 * burn, got


def test_the_process_cpu_is_booked_but_a_small_share(served: dict[str, Any]) -> None:
    inputs = served["report"].inputs
    assert inputs.unbooked_cpu_fraction is not None, inputs
    # measured with SQLite's in-span CPU counted 0.11, without it 0.30 (quiet machine)
    assert inputs.unbooked_cpu_fraction < 0.2, (inputs.process_cpu_ns, inputs.booked_cpu_ns)


def test_sqlite_cpu_inside_its_span_is_database_and_counts_as_booked(
    served: dict[str, Any],
) -> None:
    stats = served["stats"]["GET /sqlite"]
    query = statistics.median(t["thread_cpu_ns"] for t in served["truth"]["GET /sqlite"])
    parts = stats.ledger_ns["p50"]
    charged = stats.native_threads.cpu_ns_per_request if stats.native_threads else 0
    got = {k: round(v / 1e6, 2) for k, v in parts.items()}, query / 1e6, charged
    assert parts["database"] >= 0.8 * query, got
    assert charged <= 0.05 * query, got
