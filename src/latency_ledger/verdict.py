"""An endpoint's ledger -> would a port to a faster runtime pay? Amdahl's law, written out.

Contract: :func:`decide_verdict` is pure: one :class:`~latency_ledger.model.EndpointStats`
(an endpoint or ``overall``) and its findings in, a :class:`~latency_ledger.model.Verdict`
out. It reads ``latency_ns`` and ``ledger_ns`` at ``p50``, ``p99`` and ``mean``, the
request count, ``cpu_measured`` and ``runtime``.

The one arithmetic (the report's method section states the same rule). A port to a
runtime that runs the service's interpreter work ``k`` times faster saves

    saving = shrinkable * (1 - 1/k),   shrinkable = the ledger's parts in SHRINKS

at a percentile, using that percentile's ledger, and the mean saving from the mean
ledger. ``SHRINKS`` is ``interpreter`` (bytecode CPU, measured) and ``app`` (own time
when CPU was not measured: an **upper bound**, and the verdict says so). Nothing else
shrinks: database and network waits, ``waiting``, and ``native`` (CPU inside compiled
extensions: bcrypt, argon2, zlib, pydantic-core; Go's bcrypt at the same cost used
179-187 ms of CPU where Python's used 185-190 ms, so a port runs the same machine code),
or any other part not listed in ``SHRINKS``. So no saving exceeds
``shrinkable * (1 - 1/k)``, and every projected latency is that latency minus its saving.

Queueing does not shrink in the projection. It is waiting behind other requests' CPU,
and a faster runtime would shorten that queue too, but by how much depends on the load
(nearly nothing on an idle service, more than ``k`` near saturation) and on how the new
service is deployed (a Go service uses every core of its host); the projection is for the
same requests at no assumed load change, so it leaves the queue where it is. The gain in
capacity is stated apart, as requests per core now and projected.

Factors are source-to-target (:mod:`latency_ledger.runtime`): the service's runtime is
read from its resource, a service is never offered its own runtime nor one that is not
faster, and an unrecorded runtime is judged as CPython with the verdict saying so.

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

Fix first. If the best cheaper fix saves at least half as much per request as the port
(``FIX_FIRST_RATIO``), ``migration_could_pay`` becomes ``marginal``. Both sides are the
same quantity: a mean over all the endpoint's requests (the fix's bounded saving in the
requests it applies to, times their share; the port's saving on the mean ledger), and
the summary prints both. Half, because a fix (an index, a batched query) costs days and
a rewrite months.

Confidence: ``high``, lowered to ``medium`` when fewer than 100 requests (a p99 from
fewer is just the maximum), when CPU was not measured (bounds, not estimates), when the
runtime was assumed, or when the label changes between the target's low and high
factor; ``low`` under 30 requests. Reasons are written for the reader, in plain words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from latency_ledger.errors import ConfigError
from latency_ledger.findings import CHATTY_CALLS, N_PLUS_ONE, POOL_WAIT, SLOW_STATEMENT, shorten
from latency_ledger.model import EndpointStats, Finding, Projection, TargetRuntime, Verdict
from latency_ledger.runtime import (
    ASSUMED,
    RUNTIME_NAMES,
    UNKNOWN,
    default_target,
    port_targets,
    target_runtime,
)

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
# The ledger parts a port shrinks (module docstring). A new CPU part that a port does not
# speed up (compiled extensions) is simply not listed here.
SHRINKS: tuple[str, ...] = ("interpreter", "app")


def _default(name: str) -> TargetRuntime:
    target = default_target(name)
    assert target is not None, name
    return target


# Factors from CPython, the runtime the in-app collector measures; runtime.port_targets
# swaps in the pair's factors for a service on another runtime.
DEFAULT_TARGETS: tuple[TargetRuntime, ...] = (_default("node"), _default("go"))

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]{0,31}")
_FACTOR_RE = re.compile(r"\d{1,6}(?:\.\d{1,6})?|\.\d{1,6}")
_TARGET_HELP = "expected NAME=FACTOR or NAME=LOW:HIGH with factors > 0, e.g. node=5 or go=3:10"


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


def display_name(name: str) -> str:
    """How a target or runtime is named in prose (``node`` -> ``Node.js``)."""
    key = target_runtime(name)
    return RUNTIME_NAMES.get(key, name) if key != UNKNOWN else name


def format_ms(ns: int) -> str:
    """A duration for prose, to the report tables' precision: ``"29 ms"``, ``"19.6 ms"``,
    ``"142 ms"``, ``"0.35 ms"`` (the tables print ``29.0 ms``, ``19.6 ms``, ``142 ms``)."""
    ms = ns / 1e6
    if ms >= 99.95:
        return f"{ms:.0f} ms"
    if ms >= 0.995:
        return f"{ms:.1f}".removesuffix(".0") + " ms"
    if ns <= 0:
        return "0 ms"
    return f"{ms:.2g} ms"


def format_percent(fraction: float) -> str:
    """A share for prose, to the tables' precision: ``"45%"``, ``"6.4%"``, ``"<0.1%"``."""
    value = fraction * 100
    if value <= 0:
        return "0%"
    if value < 0.1:
        return "<0.1%"
    if value < 9.95:
        return f"{value:.1f}".removesuffix(".0") + "%"
    return f"{value:.0f}%"


def saving(shrinkable_ns: int, factor: float) -> int:
    """Amdahl: what running ``shrinkable_ns`` ``factor`` times faster removes."""
    return int(shrinkable_ns * (1.0 - 1.0 / factor)) if shrinkable_ns > 0 and factor > 1 else 0


def shrinkable_ns(parts: Mapping[str, int]) -> int:
    """The part of a ledger a port shrinks (``SHRINKS``)."""
    return sum(parts.get(key, 0) for key in SHRINKS)


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
        self.shrinkable_ns = shrinkable_ns(parts)
        self.native_ns = parts.get("native", 0)

    def fraction(self, ns: int) -> float:
        return ns / self.latency_ns if self.latency_ns > 0 else 0.0


def _project(
    target: TargetRuntime, p50: _Ledger, p99: _Ledger, mean: _Ledger, cpu_ns: int | None
) -> Projection:
    k = target.factor_typical
    p50_saving = saving(p50.shrinkable_ns, k)
    p99_saving = saving(p99.shrinkable_ns, k)
    return Projection(
        target=target,
        p50_ns=p50.latency_ns - p50_saving,
        p99_ns=p99.latency_ns - p99_saving,
        p50_saving_ns=p50_saving,
        p99_saving_ns=p99_saving,
        p50_saving_fraction=p50.fraction(p50_saving),
        p99_saving_fraction=p99.fraction(p99_saving),
        p50_saving_range_ns=(
            saving(p50.shrinkable_ns, target.factor_low),
            saving(p50.shrinkable_ns, target.factor_high),
        ),
        requests_per_core=_requests_per_core(mean, cpu_ns, k),
        mean_saving_ns=saving(mean.shrinkable_ns, k),
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


_PART_NAMES: Mapping[str, str] = {
    "database": "database wait",
    "network": "network wait",
    "interpreter": "interpreter (CPU) time",
    "native": "native code (CPU in compiled extensions)",
    "waiting": "waiting (queued or off-CPU)",
    "app": "own time with CPU not measured",
}


def fix_phrase(fix: Finding) -> str:
    """A finding named as the fix it stands for, in plain words."""
    target = shorten(fix.target, 60)
    if fix.kind == N_PLUS_ONE:
        return f"the N+1 on {target}"
    if fix.kind == CHATTY_CALLS:
        return f"the repeated calls to {target}"
    if fix.kind == POOL_WAIT:
        return "the database connection waits"
    if fix.kind == "native_cpu":
        return f"the native work in {target}"
    return f"the slow statement {target}"


def _summary(
    label: str,
    p50: _Ledger,
    best: Projection | None,
    verdict_parts: tuple[bool, Finding | None, bool, str],
) -> str:
    upper_bound, fix, several_targets, runtime = verdict_parts
    head = {
        DONT_MIGRATE: "Don't migrate",
        MARGINAL: "Marginal",
        MIGRATION_COULD_PAY: "Migration could pay",
    }[label]
    if not p50.parts or p50.latency_ns <= 0:
        return f"{head}: no request time was recorded for this endpoint."
    part, part_ns = max(p50.parts.items(), key=lambda kv: kv[1])
    clauses = [f"{format_percent(p50.fraction(part_ns))} of p50 is {_PART_NAMES.get(part, part)}"]
    if best is None:
        clauses.append(
            f"it runs on {RUNTIME_NAMES.get(runtime, runtime)}, and no target runtime is "
            "faster on its CPU work"
        )
    else:
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
        # Both sides of the fix-first rule, as the same quantity: means over all requests.
        fix_ns = f"saves up to {format_ms(fix.saving_ns_per_request)} per request on average"
        if best is not None:
            fix_ns += f"; the port: {format_ms(best.mean_saving_ns)} on average"
        if best is not None and label == MIGRATION_COULD_PAY:
            clauses.append(f"fixing {fix_phrase(fix)} also helps ({fix_ns})")
        else:
            clauses.append(f"fix {fix_phrase(fix)} first ({fix_ns})")
    return f"{head}: " + "; ".join(clauses) + "."


def decide_verdict(
    stats: EndpointStats,
    findings: Sequence[Finding],
    *,
    targets: Sequence[TargetRuntime] = DEFAULT_TARGETS,
    given: frozenset[str] = frozenset(),
) -> Verdict:
    """Amdahl's law on one endpoint's ledger, for each target its runtime is offered.

    ``given`` names the targets whose factors came from the command line: they apply
    from any source runtime (the module docstring of :mod:`latency_ledger.runtime`).
    """
    p50, p99, mean = _Ledger(stats, "p50"), _Ledger(stats, "p99"), _Ledger(stats, "mean")
    upper_bound = not stats.cpu_measured or any(lg.bound_ns > 0 for lg in (p50, p99, mean))
    cpu_ns: int | None = None
    if stats.cpu_measured and "mean" in stats.ledger_ns:
        mean_parts = stats.ledger_ns["mean"]
        cpu_ns = mean_parts.get("interpreter", 0) + mean_parts.get("native", 0) or None
    offered, not_offered = port_targets(stats.runtime, targets or DEFAULT_TARGETS, given)
    projections = tuple(_project(t, p50, p99, mean, cpu_ns) for t in offered)
    best = max(projections, key=lambda p: p.p50_saving_fraction) if projections else None
    fixes = _rank_fixes(findings)
    reasons: list[str] = []
    assumed = stats.runtime == UNKNOWN
    if assumed:
        reasons.append(
            f"no runtime is recorded for this service, so it is judged as "
            f"{RUNTIME_NAMES[ASSUMED]} (set it with --runtime SERVICE=RUNTIME)"
        )
    reasons.extend(not_offered)

    label = DONT_MIGRATE
    if best is not None:
        label = _label(best.p50_saving_fraction)
        reasons.append(
            f"a {display_name(best.target.name)} port would save "
            f"{format_percent(best.p50_saving_fraction)} of the median request's time "
            f"(running the interpreter's work {best.target.factor_typical:g} times faster); "
            f"a port could pay from {format_percent(COULD_PAY_FROM)} and is marginal from "
            f"{format_percent(MARGINAL_FROM)}"
        )
        if label != DONT_MIGRATE and best.p50_saving_ns < MIN_SAVING_NS:
            label = DONT_MIGRATE
            reasons.append(
                f"that is {format_ms(best.p50_saving_ns)} of the median, under the "
                f"{format_ms(MIN_SAVING_NS)} worth a rewrite"
            )
        if label == MIGRATION_COULD_PAY and fixes:
            fix = fixes[0]
            if fix.saving_ns_per_request >= FIX_FIRST_RATIO * best.mean_saving_ns:
                label = MARGINAL
                reasons.append(
                    f"fixing {fix_phrase(fix)} saves up to "
                    f"{format_ms(fix.saving_ns_per_request)} per request on average, at least "
                    f"half of the {format_ms(best.mean_saving_ns)} the port saves on average: "
                    "fix first, then measure again"
                )

    confidence = "high"
    if stats.count < MIN_REQUESTS:
        confidence = "low"
        reasons.append(f"only {stats.count} requests (fewer than {MIN_REQUESTS})")
    elif stats.count < MIN_REQUESTS_P99:
        confidence = "medium"
        reasons.append(f"{stats.count} requests: too few for a p99 (fewer than {MIN_REQUESTS_P99})")
    if upper_bound:
        confidence = _at_most_medium(confidence)
        reasons.append("CPU was not measured: own time is an upper bound on interpreter time")
    if assumed:
        confidence = _at_most_medium(confidence)
    if best is not None:
        low_ns, high_ns = best.p50_saving_range_ns
        if _label(p50.fraction(low_ns)) != _label(p50.fraction(high_ns)):
            confidence = _at_most_medium(confidence)
            reasons.append("the label changes within the target's range of factors")

    return Verdict(
        label=label,
        confidence=confidence,
        summary=_summary(
            label,
            p50,
            best,
            (upper_bound, fixes[0] if fixes else None, len(projections) > 1, stats.runtime),
        ),
        upper_bound=upper_bound,
        projections=projections,
        fixes=fixes,
        cpu_per_request_ns=cpu_ns,
        requests_per_core=NS_PER_S / cpu_ns if cpu_ns else None,
        reasons=tuple(reasons),
        runtime=ASSUMED if assumed else stats.runtime,
        runtime_assumed=assumed,
        not_offered=not_offered,
    )


_LEVELS = ("low", "medium", "high")


def _at_most_medium(confidence: str) -> str:
    return _LEVELS[min(_LEVELS.index(confidence), 1)]
