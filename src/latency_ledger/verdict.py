"""An endpoint's ledger -> would a port to a faster runtime pay? Amdahl's law, written out.

Contract: :func:`decide_verdict` is pure: one :class:`~latency_ledger.model.EndpointStats`
(an endpoint or ``overall``) and its findings in, a :class:`~latency_ledger.model.Verdict`
out. It reads only ``latency_ns``, ``ledger_ns`` and ``queueing_ns`` at ``p50``, ``p99``
and ``mean``, the request count and ``cpu_measured``.

The projection. A runtime that runs the interpreter's work ``k`` times faster saves

    saving = (interpreter + queueing) * (1 - 1/k)

at a percentile, using that percentile's ledger. ``queueing`` is the part of ``waiting``
the request spent queued behind other requests' CPU on the same event loop / GIL; that
CPU shrinks by the same ``k``, so the queue it causes is estimated to shrink alike (an
estimate: queueing is not linear in load, and near saturation it shrinks by more).
Database and network waits do not change, nor does the rest of ``waiting``, nor
``native`` (CPU inside compiled extensions: bcrypt, argon2, zlib, pydantic-core; Go's
bcrypt at the same cost used 179-187 ms of CPU where Python's used 185-190 ms, so a port
runs the same machine code). Without a
CPU measurement the ledger only has ``app`` (own time, interpreter and waiting
together), so ``app * (1 - 1/k)`` is used as an **upper bound** and the verdict says so.
Projections use each target's typical factor; ``p50_saving_range_ns`` gives the saving
at its low and high factors.

The label, from the best target's p50 saving at its typical factor:

- ``dont_migrate`` below 10%: a tenth of the median is within the week-to-week drift
  of production latency, and far from what a rewrite costs;
- ``marginal`` from 10% to 30%;
- ``migration_could_pay`` from 30%: the port would remove about a third of the median
  or more, a change users notice.

A port that saves less than ``MIN_SAVING_NS`` (2 ms) at the median is ``dont_migrate``
whatever the fraction: 56% of a 0.7 ms health check is invisible to users and smaller
than the network jitter between them and the service (throughput is stated apart, as
requests per core).

The median is the decision's basis (the typical request); p99 is reported beside it.
If the best cheaper fix saves at least half as much per request as the port would (both
averaged over all requests; ``FIX_FIRST_RATIO``), ``migration_could_pay`` becomes
``marginal``: fix first, then measure again. Half, because a fix (an index, a batched
query) costs days and a rewrite months, and a finding's cost is a lower bound on what
its fix saves (an N+1's per-query ORM work between the statements goes too).

Confidence: ``high``, lowered to ``medium`` when fewer than 100 requests (a p99 from
fewer is just the maximum), when CPU was not measured (bounds, not estimates), or when
the label changes between the target's low and high factor; ``low`` under 30 requests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from latency_ledger.errors import ConfigError
from latency_ledger.findings import N_PLUS_ONE, SLOW_STATEMENT, shorten
from latency_ledger.model import EndpointStats, Finding, Projection, TargetRuntime, Verdict

DONT_MIGRATE = "dont_migrate"
MARGINAL = "marginal"
MIGRATION_COULD_PAY = "migration_could_pay"

MARGINAL_FROM = 0.10  # p50 saving fraction (see the module docstring)
COULD_PAY_FROM = 0.30
FIX_FIRST_RATIO = 0.5  # fix saving / port saving from which to fix first (docstring)
MIN_SAVING_NS = 2_000_000  # p50 saving below which no port pays (module docstring)
MIN_REQUESTS = 30  # fewer: low confidence
MIN_REQUESTS_P99 = 100  # fewer: a p99 is the sample's maximum; at most medium
MAX_FIXES = 10
NS_PER_S = 1_000_000_000

# Why these factors, and why the ranges are wide. A factor is how many times faster
# the target runs the work that is CPython interpreter time in the ledger. Two public
# sources bracket it:
# - The Computer Language Benchmarks Game (benchmarksgame-team.pages.debian.net) times
#   the same small CPU-bound programs per language. Against CPython, Node.js and Go are
#   tens of times faster on pure loops and arithmetic (n-body, spectral-norm, mandelbrot)
#   and roughly even where CPython's hot path is already C (regex-redux, pidigits).
# - TechEmpower's Framework Benchmarks (techempower.com/benchmarks) time whole web
#   stacks (routing, JSON, database access, templates) per request; typical Node.js
#   frameworks come out a few times ahead of typical Python ones and Go's ahead of both,
#   with the spread between frameworks of one language as large as between languages.
# A request's interpreter time is framework dispatch, validation, serialization and ORM
# work, some of it already in C or Rust (json, pydantic-core, drivers), so it sits much
# nearer TechEmpower's few-fold than the Benchmarks Game's tens-fold. Hence the ranges
# below; they are planning figures to override (--target) with a measured prototype.
NODE_SOURCE = (
    "Node.js 2-10x, typically 5x faster on the interpreter's work: the Benchmarks Game "
    "(CPU-bound programs) shows V8 tens of times faster than CPython on pure loops but "
    "about even where Python's hot path is C; TechEmpower's whole-stack web benchmarks "
    "show typical Node.js frameworks a few times ahead of Python ones. Request CPU is "
    "framework, serialization and ORM work, so the few-fold end applies."
)
GO_SOURCE = (
    "Go 3-30x, typically 10x faster on the interpreter's work: compiled ahead of time, "
    "at or above Node.js on most Benchmarks Game programs and tens of times faster than "
    "CPython on pure loops; TechEmpower's whole-stack web benchmarks put Go frameworks "
    "ahead of Node.js and Python ones. The range is wide because the gain depends on how "
    "much of the Python request already runs in C."
)

DEFAULT_TARGETS: tuple[TargetRuntime, ...] = (
    TargetRuntime(
        name="node", factor_low=2.0, factor_typical=5.0, factor_high=10.0, source=NODE_SOURCE
    ),
    TargetRuntime(
        name="go", factor_low=3.0, factor_typical=10.0, factor_high=30.0, source=GO_SOURCE
    ),
)

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]{0,31}")
_FACTOR_RE = re.compile(r"\d{1,6}(?:\.\d{1,6})?|\.\d{1,6}")
_TARGET_HELP = "expected NAME=FACTOR or NAME=LOW:HIGH with factors > 0, e.g. node=5 or go=3:10"
_LEVELS = ("low", "medium", "high")


def parse_target(text: str) -> TargetRuntime:
    """``"node=5"``, ``"go=3:10"`` (typical: the geometric mean) or ``"x=2:4:8"``.

    Unknown names are allowed. Raises ConfigError for anything else.
    """
    name, sep, spec = text.strip().partition("=")
    name = name.strip()
    if not sep or not _NAME_RE.fullmatch(name):
        raise ConfigError(f"--target {text!r}: {_TARGET_HELP}")
    parts = [p.strip() for p in spec.split(":")]
    if not 1 <= len(parts) <= 3 or not all(_FACTOR_RE.fullmatch(p) for p in parts):
        raise ConfigError(f"--target {text!r}: {_TARGET_HELP}")
    factors = [float(p) for p in parts]
    if min(factors) <= 0:
        raise ConfigError(f"--target {text!r}: factors must be > 0 ({_TARGET_HELP})")
    if len(factors) == 1:
        low = typical = high = factors[0]
    elif len(factors) == 2:
        low, high = factors
        typical = math.sqrt(low * high)
    else:
        low, typical, high = factors
    if not low <= typical <= high:
        raise ConfigError(f"--target {text!r}: factors must be in order LOW:TYPICAL:HIGH")
    return TargetRuntime(
        name=name.lower(),
        factor_low=low,
        factor_typical=typical,
        factor_high=high,
        source=f"given on the command line (--target {text.strip()})",
    )


_DISPLAY_NAMES: Mapping[str, str] = MappingProxyType(
    {"node": "Node.js", "nodejs": "Node.js", "go": "Go", "golang": "Go"}
)


def display_name(name: str) -> str:
    """How a target is named in prose."""
    return _DISPLAY_NAMES.get(name, name)


def format_ms(ns: int) -> str:
    """A duration for prose: ``"29 ms"``, ``"2.5 ms"``, ``"0.35 ms"``."""
    ms = ns / 1e6
    if ms >= 9.95:
        return f"{ms:.0f} ms"
    if ms >= 0.995:
        return f"{ms:.1f}".removesuffix(".0") + " ms"
    if ns <= 0:
        return "0 ms"
    return f"{ms:.2g} ms"


def format_percent(fraction: float) -> str:
    """A share for prose: ``"8%"``, ``"<1%"``."""
    if 0 < fraction < 0.005:
        return "<1%"
    return f"{fraction * 100:.0f}%"


def _saving(shrinkable_ns: int, factor: float) -> int:
    return int(shrinkable_ns * (1.0 - 1.0 / factor)) if shrinkable_ns > 0 else 0


def _label(fraction: float) -> str:
    if fraction >= COULD_PAY_FROM:
        return MIGRATION_COULD_PAY
    if fraction >= MARGINAL_FROM:
        return MARGINAL
    return DONT_MIGRATE


class _Ledger:
    """One endpoint's numbers at a percentile key, read defensively."""

    def __init__(self, stats: EndpointStats, key: str) -> None:
        parts: Mapping[str, int] = stats.ledger_ns.get(key, {})
        self.parts = parts
        self.latency_ns = stats.latency_ns.get(key) or sum(parts.values())
        self.bound_ns = parts.get("app", 0)
        queueing = stats.queueing_ns.get(key, 0) if stats.cpu_measured else 0
        # What a faster runtime shrinks: bytecode CPU ("interpreter"; "native" does not
        # shrink), the queue other requests' CPU causes, and (bound mode) all own time.
        self.shrinkable_ns = parts.get("interpreter", 0) + queueing + self.bound_ns
        self.native_ns = parts.get("native", 0)

    def fraction(self, ns: int) -> float:
        return ns / self.latency_ns if self.latency_ns > 0 else 0.0


def _project(
    target: TargetRuntime, p50: _Ledger, p99: _Ledger, mean: _Ledger, cpu_ns: int | None
) -> Projection:
    k = target.factor_typical
    p50_saving = _saving(p50.shrinkable_ns, k)
    p99_saving = _saving(p99.shrinkable_ns, k)
    return Projection(
        target=target,
        p50_ns=p50.latency_ns - p50_saving,
        p99_ns=p99.latency_ns - p99_saving,
        p50_saving_ns=p50_saving,
        p99_saving_ns=p99_saving,
        p50_saving_fraction=p50.fraction(p50_saving),
        p99_saving_fraction=p99.fraction(p99_saving),
        p50_saving_range_ns=(
            _saving(p50.shrinkable_ns, target.factor_low),
            _saving(p50.shrinkable_ns, target.factor_high),
        ),
        requests_per_core=_requests_per_core(mean, cpu_ns, k),
    )


def _requests_per_core(mean: _Ledger, cpu_ns: int | None, k: float) -> float | None:
    """Projected: the bytecode CPU shrinks by ``k``, the native CPU stays."""
    if not cpu_ns:
        return None
    projected = (cpu_ns - mean.native_ns) / k + mean.native_ns
    return NS_PER_S / projected if projected > 0 else None


def _rank_fixes(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    # A statement reported as an N+1 is the same fix as its slow-statement entry.
    n_plus_one = {f.target for f in findings if f.kind == N_PLUS_ONE}
    fixes = [
        f
        for f in findings
        if f.saving_ns_per_request > 0 and not (f.kind == SLOW_STATEMENT and f.target in n_plus_one)
    ]
    fixes.sort(key=lambda f: (-f.saving_ns_per_request, f.kind, f.target))
    return tuple(fixes[:MAX_FIXES])


_PART_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "database": "database wait",
        "network": "network wait",
        "interpreter": "interpreter (CPU) time",
        "native": "native code (CPU in compiled extensions)",
        "waiting": "waiting (queued or off-CPU)",
        "app": "own time with CPU not measured",
    }
)


def _fix_phrase(fix: Finding) -> str:
    target = shorten(fix.target, 60)
    if fix.kind == N_PLUS_ONE:
        return f"the N+1 on {target}"
    if fix.kind == "chatty_calls":
        return f"the repeated calls to {target}"
    if fix.kind == "pool_wait":
        return "the database connection waits"
    if fix.kind == "native_cpu":
        return f"the native work in {target}"
    return f"the slow statement {target}"


def _summary(
    label: str,
    p50: _Ledger,
    best: Projection,
    upper_bound: bool,
    fix: Finding | None,
    several_targets: bool,
) -> str:
    head = {
        DONT_MIGRATE: "Don't migrate",
        MARGINAL: "Marginal",
        MIGRATION_COULD_PAY: "Migration could pay",
    }[label]
    if not p50.parts or p50.latency_ns <= 0:
        return f"{head}: no request time was recorded for this endpoint."
    part, part_ns = max(p50.parts.items(), key=lambda kv: kv[1])
    clauses = [f"{format_percent(p50.fraction(part_ns))} of p50 is {_PART_NAMES.get(part, part)}"]
    even = "even " if label == DONT_MIGRATE and several_targets else ""
    verb = "saves at most" if upper_bound else "saves about"
    port = (
        f"{even}a {display_name(best.target.name)} port {verb} "
        f"{format_ms(best.p50_saving_ns)} ({format_percent(best.p50_saving_fraction)}) of p50"
    )
    if upper_bound:
        port += " (an upper bound: CPU was not measured)"
    clauses.append(port)
    if fix is not None:
        cost = f"{format_ms(fix.saving_ns_per_request)} per request"
        if label == MIGRATION_COULD_PAY:
            clauses.append(f"fixing {_fix_phrase(fix)} also saves {cost}")
        else:
            clauses.append(f"fix {_fix_phrase(fix)} first ({cost})")
    return f"{head}: " + "; ".join(clauses) + "."


def decide_verdict(
    stats: EndpointStats,
    findings: Sequence[Finding],
    *,
    targets: Sequence[TargetRuntime] = DEFAULT_TARGETS,
) -> Verdict:
    """Amdahl's law on one endpoint's ledger, for each target runtime."""
    p50, p99, mean = _Ledger(stats, "p50"), _Ledger(stats, "p99"), _Ledger(stats, "mean")
    upper_bound = not stats.cpu_measured or any(lg.bound_ns > 0 for lg in (p50, p99, mean))
    cpu_ns: int | None = None
    if stats.cpu_measured and "mean" in stats.ledger_ns:
        mean_parts = stats.ledger_ns["mean"]
        cpu_ns = mean_parts.get("interpreter", 0) + mean_parts.get("native", 0) or None
    projections = tuple(_project(t, p50, p99, mean, cpu_ns) for t in targets or DEFAULT_TARGETS)
    best = max(projections, key=lambda p: p.p50_saving_fraction)
    fixes = _rank_fixes(findings)
    reasons: list[str] = []

    label = _label(best.p50_saving_fraction)
    reasons.append(
        f"best target {best.target.name}: p50 saving fraction {best.p50_saving_fraction:.3f} "
        f"at factor {best.target.factor_typical:g} (thresholds {MARGINAL_FROM:g} / "
        f"{COULD_PAY_FROM:g})"
    )
    if label != DONT_MIGRATE and best.p50_saving_ns < MIN_SAVING_NS:
        label = DONT_MIGRATE
        reasons.append(
            f"the best port saves {format_ms(best.p50_saving_ns)} of p50, under the "
            f"{format_ms(MIN_SAVING_NS)} worth a rewrite"
        )
    if label == MIGRATION_COULD_PAY and fixes:
        port_mean_ns = _saving(mean.shrinkable_ns, best.target.factor_typical)
        if fixes[0].saving_ns_per_request >= FIX_FIRST_RATIO * port_mean_ns:
            label = MARGINAL
            reasons.append(
                f"the {fixes[0].kind} fix saves {format_ms(fixes[0].saving_ns_per_request)} "
                f"per request, at least half the port's {format_ms(port_mean_ns)}: fix first"
            )

    confidence = "high"
    if stats.count < MIN_REQUESTS:
        confidence = "low"
        reasons.append(f"only {stats.count} requests (< {MIN_REQUESTS})")
    elif stats.count < MIN_REQUESTS_P99:
        confidence = "medium"
        reasons.append(f"{stats.count} requests: p99 is not yet resolved (< {MIN_REQUESTS_P99})")
    if upper_bound:
        confidence = _LEVELS[min(_LEVELS.index(confidence), 1)]
        reasons.append("CPU not measured: own time is an upper bound on interpreter time")
    low_ns, high_ns = best.p50_saving_range_ns
    if _label(p50.fraction(low_ns)) != _label(p50.fraction(high_ns)):
        confidence = _LEVELS[min(_LEVELS.index(confidence), 1)]
        reasons.append("the label changes within the target's factor range")

    return Verdict(
        label=label,
        confidence=confidence,
        summary=_summary(
            label, p50, best, upper_bound, fixes[0] if fixes else None, len(projections) > 1
        ),
        upper_bound=upper_bound,
        projections=projections,
        fixes=fixes,
        cpu_per_request_ns=cpu_ns,
        requests_per_core=NS_PER_S / cpu_ns if cpu_ns else None,
        reasons=tuple(reasons),
    )
