"""Issue 9's criterion on the example apps: findings from sampled trees hold for every request.

Two copies of one example shop serve the same seeded request mix (``examples/load.py``'s
60% order pages, 12% searches, 15% checkouts, 8% shipping quotes, 5% health checks), one
request to each in turn, so the machine's load falls on both alike: one collector keeps
its child-span trees the default way (``keep_spans="sampled"``: the slowest so far per
endpoint, failures, a random share, each tree carrying its keep probability), the other
keeps every tree. Both are analyzed, and what was fixed before measuring must hold:

- every N+1 and slow-statement finding the keep-everything run clearly makes (an N+1, or
  a statement at least 1.5x as slow as the line that makes it slow: one near the line
  can fall either side of it in another run, its p50 resting on a few kept trees) is in
  the sampled run, with its share of requests, count per request and count within 25%
  of the keep-everything figure, and, for the N+1, its cost per affected request and
  total too (the issue's acceptance);
- no statement is counted twice: in every kept tree, the statements the ledger booked are
  the ones SQLite itself reported running for that request (its trace callback, below
  the ORM, the driver and the collector: ``apps/statement_log.py``), one for one; the
  keep-everything N+1 count per request is SQLite's mean count over the endpoint, and the
  sampled one is within 25% of SQLite's mean over the sampled copy's own requests.

Both copies count every request's statements in the app (``ledger.statement.*``), so
the N+1 and slow-statement counts, shares and costs are sums over every request in
either copy, not estimates from the kept trees (every finding says so: ``counted``), and
the sampled copy is checked at the production 1% as well as at 25%: the figures no
longer rest on how many random trees were drawn. What still differs between the copies
is timing: each copy's own requests, on a shared machine.

What is not held, and why: the times of a slow statement (cost per request and total).
The search endpoint gets ~10 requests of the 80, and on a loaded machine what the ledger
books as a statement's own time varies from request to request more than its duration
does (at a load average of 9 on 2 cores the search's database time was 0.3-14 ms against
8-35 ms durations: the rest was waiting for a CPU): then a second copy's ~10 requests do
not pin it to 25% (the two copies differed by 1.6x). Unloaded they agreed within 2%. They
are printed beside the others.

Before the counts (kept trees alone, weighted by their keep probability),
``scripts/sampled_vs_all.py --traces DIR --sample-rate R`` replayed the collector's keep
decision on a keep-everything run: on this test's Django run (110 requests, 56 order
pages), 1,000 draws at 25% put the N+1 count per request off by 2% at the median and 11%
at worst; at the production 1%, 15% and 24%: with ~0.6 random order-page trees expected,
the count rested on the slow trees alone, the larger orders.

Percentiles of a statement's own time (``p50_ns``) are not held to 25%: they rest on the
call durations of the kept trees only (no per-request count holds single calls), and
with few random trees the slow trees, kept because they were slow, pull them up.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from latency_ledger.analyze import analyze, default_rules
from latency_ledger.demo import _uvicorn as uvicorn_command
from latency_ledger.demo import free_port
from latency_ledger.findings import (
    DEFAULT_THRESHOLDS,
    N_PLUS_ONE,
    SLOW_STATEMENT,
    is_setup_statement,
)
from latency_ledger.ledger import book_trace
from latency_ledger.model import CallKind, Finding, Report, Request
from latency_ledger.read import ReadStats, read_traces
from latency_ledger.sql import normalize_statement

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
APPS = Path(__file__).resolve().parent / "apps"
SEED = 20261207
REQUESTS = 80  # per app, each sent to both copies
# the production default (the collector's counts make it safe) and a large share, where
# the kept trees alone would do too
SAMPLE_RATES = (0.01, 0.25)
WITHIN = 0.25  # the acceptance
COUNTED = ("requests_fraction", "count_per_request", "count")
TIMED = ("ns_per_request", "total_ns")
SHOWN = (*COUNTED, *TIMED, "p50_ns")  # what is held to 25%: held() and the docstring
START_TIMEOUT_S = 60.0


def _module(path: Path, name: str) -> Any:
    """An example's script (examples/load.py, examples/django/serve.py), loaded by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True, slots=True, kw_only=True)
class Copy:
    """One copy of the shop under test: where it serves, writes traces and its log."""

    mode: str  # the collector's keep_spans
    url: str
    traces: Path
    statements: Path


@contextmanager
def _serve(argv: list[str], env: dict[str, str], url: str, stop: int, log: Path) -> Iterator[None]:
    """``argv`` serving at ``url`` until the block ends, then stopped by signal ``stop``;
    its output in ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{argv}: exited early: {tail}")
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv}: did not answer within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(stop)  # graceful: the collector flushes at exit
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def _two_copies(app: str, tmp: Path, rate: float) -> Iterator[tuple[Copy, Copy]]:
    """The rates stub and the shop twice, sampled and keep-everything, on one database."""
    rates_port = free_port()
    base = dict(os.environ)
    base.update(
        LATENCY_LEDGER="1",
        SHOP_DOWNSTREAM_URL=f"http://127.0.0.1:{rates_port}",
        PYTHONPATH=os.pathsep.join([str(APPS), str(EXAMPLES)]),
        LATENCY_LEDGER_SAMPLE_RATE=str(rate),
        # no pyinstrument profiles: a profiled request runs ~1.85x slower (MEASURED.md),
        # and the two copies would profile different requests
        LATENCY_LEDGER_PROFILE_RATE="0",
        LATENCY_LEDGER_PROFILE_SLOWEST="0",
    )
    if app == "django":
        serve = _module(EXAMPLES / "django" / "serve.py", "ledger_sampled_serve")
        base = serve.environment(
            base,
            traces_dir=tmp,
            rates_url=base["SHOP_DOWNSTREAM_URL"],
            sqlite_path=tmp / "django-shop.sqlite3",
        )
        subprocess.run(serve.seed_command(), env=base, check=True, capture_output=True)
    else:
        base.update(OTEL_SERVICE_NAME="shop", SHOP_DATABASE_URL=f"sqlite:///{tmp / 'shop.db'}")
        # seeded once here, so the two copies only read it
        subprocess.run(
            [sys.executable, "-c", "import os; from shop import db; "
             "db.seed(db.make_engine(os.environ['SHOP_DATABASE_URL']))"],
            env=base, check=True, capture_output=True,
        )  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(
            _serve(
                uvicorn_command(EXAMPLES, "downstream:app", rates_port),
                base,
                f"http://127.0.0.1:{rates_port}",
                signal.SIGINT,
                tmp / "rates.log",
            )
        )
        copies = []
        for mode in ("sampled", "all"):
            port = free_port()
            copy = Copy(
                mode=mode,
                url=f"http://127.0.0.1:{port}",
                traces=tmp / f"traces-{mode}",
                statements=tmp / f"statements-{mode}.jsonl",
            )
            copy.traces.mkdir()
            env = dict(
                base,
                LATENCY_LEDGER_KEEP_SPANS=mode,
                LATENCY_LEDGER_OUTPUT_DIR=str(copy.traces),
                STATEMENT_LOG=str(copy.statements),
            )
            if app == "django":
                argv = serve.server_command(port, threads=1)
                argv[argv.index("django_shop.wsgi:application")] = "counted_storefront:application"
                argv += ["--pythonpath", str(APPS)]
                stop = signal.SIGTERM
            else:
                argv, stop = uvicorn_command(APPS, "counted_shop:app", port), signal.SIGINT
            stack.enter_context(_serve(argv, env, copy.url, stop, tmp / f"{mode}.log"))
            copies.append(copy)
        yield copies[0], copies[1]


def drive(urls: tuple[str, str], count: int, seed: int) -> Counter[str]:
    """``count`` requests of the example mix, each sent to both copies one after the other
    (which goes first alternates); the count of answers by status, per copy."""
    load = _module(EXAMPLES / "load.py", "ledger_sampled_load")
    rng = random.Random(seed)
    kinds = [kind for kind, _ in load.MIX]
    weights = [weight for _, weight in load.MIX]
    answers: Counter[str] = Counter()
    with httpx.Client(timeout=30.0) as client:
        for n in range(count):
            method, path, body = load._request(rng.choices(kinds, weights)[0], rng)
            for url in urls if n % 2 == 0 else urls[::-1]:
                response = client.request(method, url + path, json=body)
                answers[f"{url} {response.status_code}"] += 1
    return answers


def booked_requests(traces: Path) -> list[Request]:
    """Every request in ``traces``, in the order they started."""
    rules = default_rules()
    requests = [
        request
        for trace in read_traces([traces], stats=ReadStats())
        for request in book_trace(trace, rules=rules).requests
    ]
    return sorted(requests, key=lambda r: r.start_ns)


def statement_log(path: Path) -> list[tuple[str, Counter[str]]]:
    """SQLite's log: (path, normalized statement -> runs) per request, in the order the
    requests began, setup statements left out."""
    import json

    out = []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    for entry in sorted(entries, key=lambda e: int(e["start_ns"])):
        counted = Counter(
            normalize_statement(sql)
            for sql in entry["statements"]
            if not is_setup_statement(normalize_statement(sql))
        )
        out.append((entry["path"], counted))
    return out


def booked_statements(request: Request) -> Counter[str]:
    return Counter(
        normalize_statement(call.target)
        for call in request.calls
        if call.kind == CallKind.QUERY and not is_setup_statement(normalize_statement(call.target))
    )


def findings_of(report: Report) -> dict[tuple[str, str, str], tuple[Finding, int]]:
    """Every N+1 and slow-statement finding, per endpoint and overall ("*"), with the p50
    latency of its row (what makes a statement slow)."""
    rows = [*report.endpoints, report.overall]
    return {
        (row.endpoint, f.kind, f.target): (f, row.latency_ns.get("p50", 0))
        for row in rows
        for f in row.findings
        if f.kind in (N_PLUS_ONE, SLOW_STATEMENT)
    }


def clearly_found(finding: Finding, row_p50_ns: int) -> bool:
    """An N+1, or a statement whose p50 is at least 1.5x what makes it slow: one near
    that line may fall either side of it in another run of the same load."""
    t = DEFAULT_THRESHOLDS
    floor = max(t.slow_statement_min_ns, t.slow_statement_min_fraction * row_p50_ns)
    return finding.kind == N_PLUS_ONE or finding.p50_ns >= 1.5 * floor


def compare(sampled: Report, kept: Report) -> list[tuple[str, str, float, float, float]]:
    """(finding, figure, sampled, keep-everything, ratio) for every figure of every
    keep-everything finding clearly found (ratio 0.0: not found when sampled)."""
    mine = findings_of(sampled)
    rows = []
    for key, (truth, p50) in sorted(findings_of(kept).items()):
        if not clearly_found(truth, p50):
            continue
        got = mine.get(key)
        name = f"{key[0]} {key[1]} {key[2][:40]}"
        for figure in SHOWN:
            want = float(getattr(truth, figure))
            have = float(getattr(got[0], figure)) if got is not None else 0.0
            rows.append((name, figure, have, want, have / want if want else 0.0))
    return rows


def held(row: tuple[str, str, float, float, float]) -> bool:
    """Whether a row is held to 25%: counts and shares always, times for N+1 findings."""
    name, figure = row[0], row[1]
    return figure in COUNTED or (figure in TIMED and f" {N_PLUS_ONE} " in name)


def order_page_counts(log: list[tuple[str, Counter[str]]], statement: str) -> list[int]:
    return [counted[statement] for path, counted in log if path.startswith("/orders/")]


@pytest.mark.parametrize("rate", SAMPLE_RATES)
@pytest.mark.parametrize("app", ["fastapi", "django"])
def test_sampled_findings_within_a_quarter_of_keeping_every_tree(
    app: str, rate: float, tmp_path: Path
) -> None:
    with _two_copies(app, tmp_path, rate) as (sampled, kept):
        answers = drive((sampled.url, kept.url), REQUESTS, SEED)
    assert all(key.endswith(" 200") for key in answers), answers

    # No statement counted twice (nor missed): SQLite's own log against each kept tree.
    logs = {}
    for copy in (sampled, kept):
        requests = booked_requests(copy.traces)
        log = logs[copy.mode] = statement_log(copy.statements)
        assert len(requests) == len(log)  # one client at a time: the same order
        trees = [(r, counted) for r, (_, counted) in zip(requests, log, strict=True) if r.calls]
        assert trees
        for request, counted in trees:
            assert booked_statements(request) == counted, request.endpoint
    assert all(r.calls or r.endpoint == "GET /health" for r in booked_requests(kept.traces))

    sampled_report, kept_report = analyze([sampled.traces]), analyze([kept.traces])
    truth = findings_of(kept_report)
    mine = findings_of(sampled_report)
    # The N+1 the order page was written to have, counted as SQLite counted it: exactly
    # when every tree was kept, within 25% from the sampled trees (timing-free figures).
    (order_page,) = [k for k in truth if k[1] == N_PLUS_ONE and k[0] != "*"]
    runs = order_page_counts(logs["all"], order_page[2])
    assert truth[order_page][0].count_per_request == pytest.approx(sum(runs) / len(runs))
    runs = order_page_counts(logs["sampled"], order_page[2])
    assert mine[order_page][0].count_per_request == pytest.approx(sum(runs) / len(runs), rel=WITHIN)

    # every request's statements were counted: no finding rests on the sample
    assert all(f.counted for f, _ in (*mine.values(), *truth.values())), mine

    rows = compare(sampled_report, kept_report)
    table = "\n".join(
        f"{name:70} {figure:18} {have:14.3f} {want:14.3f} {ratio:6.3f}"
        + ("" if held((name, figure, have, want, ratio)) else " (shown)")
        for name, figure, have, want, ratio in rows
    )
    print(f"\n{app} at {rate:.0%}: finding, figure, sampled, keep-everything, ratio\n{table}")
    assert any(row[1] == "ns_per_request" and held(row) for row in rows)
    off = [row for row in rows if held(row) and not 1 - WITHIN <= row[4] <= 1 + WITHIN]
    assert not off, table
