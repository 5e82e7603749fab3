"""The default (sampled) mode against keep-everything, on the same load of an example app.

Run:  uv run python scripts/sampled_vs_all.py --app shop --duration 30 [--seeds 20]
      uv run python scripts/sampled_vs_all.py --traces DIR   (a keep-everything run kept)
      --sample-rate 0.1 replays another random share than the default 1%

1. Runs the example app and its load (``latency-ledger demo``'s servers and mix) with
   ``LATENCY_LEDGER_KEEP_SPANS=all``: every request's tree is kept. Its findings are the
   truth.
2. For each of ``--seeds`` random draws, replays the collector's own keep decision
   (``keep.KeepRule.keep`` with the default configuration: failed requests, the slowest so
   far per endpoint in each 60 s window, 1% at random) over those same requests in the
   order they finished, its clock set to their end times. A request not kept loses its
   child spans, as the sampled mode exports it (SERVER span with its ``ledger.*``
   totals, ``ledger.spans_kept`` false); a kept one gains ``ledger.keep_reason`` and
   ``ledger.keep_probability``.
3. Analyzes the truth, each sampled set, and each sampled set without the keep
   probabilities (the kept trees taken as they are, as before issue 9), and prints for
   every N+1 and slow-statement finding of the truth the median and worst relative
   error of its cost per request, count per request and share of requests over the
   draws, and how many draws are within 25%.

Replaying the decision on one recorded load, rather than running the load twice, keeps
the comparison to what sampling does: two runs on a shared machine differ by more than
that. The decision is the collector's code; only its clock and random draws are set.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import latency_ledger.collect.keep as keep_module
from latency_ledger.analyze import analyze
from latency_ledger.collect import CollectConfig
from latency_ledger.collect.keep import KeepRule
from latency_ledger.model import Finding, Report

SERVER = 2
KINDS = ("n_plus_one", "slow_statement")
BOUND = 0.25

DEFAULT_RATE = CollectConfig().sample_rate


def _lines(traces: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(traces.rglob("*")):
        if not path.is_file():
            continue
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def _spans(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in document.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            yield from scope.get("spans", ())


def _attr(span: dict[str, Any], key: str) -> Any:
    for attr in span.get("attributes", ()):
        if attr["key"] == key:
            value = attr["value"]
            return next(iter(value.values()), None)
    return None


def _set(span: dict[str, Any], key: str, value: dict[str, Any]) -> None:
    attrs = [a for a in span.get("attributes", ()) if a["key"] != key]
    attrs.append({"key": key, "value": value})
    span["attributes"] = attrs


def _owners(documents: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(trace, span id) -> (trace, span id) of the SERVER span it is booked under."""
    parent: dict[tuple[str, str], tuple[str, str] | None] = {}
    servers: set[tuple[str, str]] = set()
    for document in documents:
        for span in _spans(document):
            key = (span["traceId"], span["spanId"])
            parent[key] = (
                (span["traceId"], span["parentSpanId"]) if span.get("parentSpanId") else None
            )
            if span.get("kind") in (SERVER, "SPAN_KIND_SERVER"):
                servers.add(key)
    owners = {}
    for key in parent:
        walk: tuple[str, str] | None = key
        for _ in range(64):
            if walk is None or walk in servers:
                break
            walk = parent.get(walk)
        if walk is not None and walk in servers:
            owners[key] = walk
    return owners


def _decide(
    documents: list[dict[str, Any]], seed: int, sample_rate: float = DEFAULT_RATE
) -> dict[tuple[str, str], tuple[str, float] | None]:
    """SERVER span -> the collector's keep decision, replayed in end order."""
    servers = [
        span
        for document in documents
        for span in _spans(document)
        if span.get("kind") in (SERVER, "SPAN_KIND_SERVER")
    ]
    servers.sort(key=lambda s: int(s["endTimeUnixNano"]))
    clock = [0]
    original = keep_module.time_ns
    keep_module.time_ns = lambda: clock[0]  # type: ignore[assignment]
    try:
        rule = KeepRule(CollectConfig(set_global_provider=False, sample_rate=sample_rate))
        rule.rng = random.Random(seed)
        decisions = {}
        for span in servers:
            clock[0] = int(span["endTimeUnixNano"])
            wall = clock[0] - int(span["startTimeUnixNano"])
            status = _attr(span, "http.response.status_code")
            failed = (span.get("status") or {}).get("code") in (2, "STATUS_CODE_ERROR") or (
                status is not None and int(status) >= 500
            )
            method = _attr(span, "http.request.method") or ""
            route = _attr(span, "http.route") or "(unmatched)"
            decisions[(span["traceId"], span["spanId"])] = rule.keep(
                f"{method} {route}", wall, failed
            )
    finally:
        keep_module.time_ns = original  # type: ignore[assignment]
    return decisions


def _sampled(
    documents: list[dict[str, Any]],
    owners: dict[tuple[str, str], tuple[str, str]],
    decisions: dict[tuple[str, str], tuple[str, float] | None],
    out: Path,
    *,
    probabilities: bool,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "sampled.jsonl").open("w", encoding="utf-8") as handle:
        for document in documents:
            copy = json.loads(json.dumps(document))
            for resource in copy.get("resourceSpans", ()):
                for scope in resource.get("scopeSpans", ()):
                    kept_spans = []
                    for span in scope.get("spans", ()):
                        key = (span["traceId"], span["spanId"])
                        owner = owners.get(key)
                        keep = decisions.get(owner) if owner is not None else ("outside", 1.0)
                        if owner == key:
                            _set(span, "ledger.spans_kept", {"boolValue": keep is not None})
                            if keep is not None and probabilities:
                                _set(span, "ledger.keep_reason", {"stringValue": keep[0]})
                                _set(span, "ledger.keep_probability", {"doubleValue": keep[1]})
                            kept_spans.append(span)
                        elif keep is not None:
                            kept_spans.append(span)
                    scope["spans"] = kept_spans
            handle.write(json.dumps(copy) + "\n")


def _findings(report: Report) -> dict[tuple[str, str, str, str], Finding]:
    return {
        (e.service, e.endpoint, f.kind, f.target): f
        for e in report.endpoints
        for f in e.findings
        if f.kind in KINDS
    }


def _error(got: float, truth: float) -> float:
    return abs(got - truth) / truth if truth else (0.0 if got == truth else float("inf"))


def _figures(finding: Finding | None) -> tuple[float, float, float]:
    if finding is None:
        return 0.0, 0.0, 0.0
    return (
        float(finding.saving_ns_per_request),
        finding.count_per_request,
        finding.requests_fraction,
    )


def compare(traces: Path, seeds: int, sample_rate: float = DEFAULT_RATE) -> int:
    documents = list(_lines(traces))
    owners = _owners(documents)
    truth = _findings(analyze([traces]))
    if not truth:
        print("no N+1 or slow-statement finding in the keep-everything run", file=sys.stderr)
        return 1
    rows: dict[tuple[str, str, str, str], dict[str, list[tuple[float, ...]]]] = {
        key: {"weighted": [], "unweighted": [], "margin": []} for key in truth
    }
    kept_counts = []
    with tempfile.TemporaryDirectory() as work:
        for seed in range(seeds):
            decisions = _decide(documents, seed, sample_rate)
            kept_counts.append(sum(d is not None for d in decisions.values()))
            for label, probabilities in (("weighted", True), ("unweighted", False)):
                out = Path(work) / f"{seed}-{label}"
                _sampled(documents, owners, decisions, out, probabilities=probabilities)
                found = _findings(analyze([out]))
                for key, want in truth.items():
                    got = found.get(key)
                    errors = tuple(
                        _error(g, t) for g, t in zip(_figures(got), _figures(want), strict=True)
                    )
                    rows[key][label].append(errors)
                    if label == "weighted":
                        rows[key]["margin"].append((got.margin_fraction if got else 0.0,))
    requests = len(_decide(documents, 0))
    print(
        f"{requests} requests; the sampled mode kept {min(kept_counts)}-{max(kept_counts)} "
        f"trees over {seeds} draws"
    )
    print("figure: cost per request / count per request / share of requests")
    for key, want in sorted(truth.items(), key=lambda kv: -kv[1].saving_ns_per_request):
        _service, endpoint, kind, target = key
        cost, count, share = _figures(want)
        print(
            f"\n{endpoint} {kind}: {target[:70]}\n  truth: {cost / 1e6:.2f} ms/request, "
            f"{count:.1f}x, in {share:.0%} of requests"
        )
        for label in ("weighted", "unweighted"):
            errors = rows[key][label]
            parts = []
            for i, name in enumerate(("cost", "count", "share")):
                values = [e[i] for e in errors]
                within = sum(v <= BOUND for v in values)
                parts.append(
                    f"{name} median {statistics.median(values):.0%} worst {max(values):.0%} "
                    f"({within}/{len(values)} within 25%)"
                )
            print(f"  {label:>10}: " + "; ".join(parts))
        margins = [m[0] for m in rows[key]["margin"]]
        print(
            f"  stated 95% margin of the cost, median over draws: {statistics.median(margins):.0%}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=("shop", "django"), default="shop")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--traces", type=Path, help="a keep-everything run already recorded")
    parser.add_argument("--out", type=Path, help="where the run is kept (default: a temp dir)")
    parser.add_argument(
        "--sample-rate", type=float, default=DEFAULT_RATE, help="the random share replayed"
    )
    args = parser.parse_args()
    if args.traces is not None:
        return compare(args.traces, args.seeds, args.sample_rate)
    from latency_ledger.demo import run_demo

    out = args.out or Path(tempfile.mkdtemp(prefix=f"sampled-vs-all-{args.app}-"))
    os.environ["LATENCY_LEDGER_KEEP_SPANS"] = "all"
    run_demo(app=args.app, duration_s=args.duration, out_dir=out)
    print(f"keep-everything traces: {out / 'traces'}", file=sys.stderr)
    return compare(out / "traces", args.seeds, args.sample_rate)


if __name__ == "__main__":
    sys.exit(main())
