"""Booked requests -> findings: the cheaper fixes a rewrite would have to beat.

Contract: :class:`FindingsAccumulator` takes :class:`~latency_ledger.model.Request`
records one at a time and keeps per endpoint x statement (or call target) counters and
one ``array('q')`` of call durations per statement, never per-request rows; then
``findings()`` and ``overall()`` return :class:`~latency_ledger.model.Finding` records,
largest ``saving_ns_per_request`` first. :func:`detect_repeats` is the pure per-request
step underneath. Findings carry normalized statements only (``sql.normalize_statement``),
never raw literals.

Kinds:

- ``n_plus_one``: one normalized statement run at least ``n_plus_one_min_repeats``
  times in a request, one after the other or concurrently, costing enough (below).
  Its cost is the calls' ``booked_ns``: for concurrent calls that is the time they
  really held the request up, not the sum of their durations.
- ``chatty_calls``: the same for outgoing HTTP, RPC, cache and messaging calls to one
  target (``"METHOD host/route"``, or the normalized cache command).
- ``pool_wait``: time spent waiting for (or opening) a database connection.
- ``slow_statement``: statements ranked by total database time, with count, p50, p99.

Shares (``requests_fraction``) are over the requests whose calls were kept: a request
booked from ``ledger.*`` totals carries no calls and says nothing either way. When the
collector keeps child spans for a biased sample (slow and failed requests), the shares
describe that sample.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from latency_ledger.errors import ConfigError
from latency_ledger.model import Call, CallKind, Finding, Request
from latency_ledger.sql import normalize_statement

N_PLUS_ONE = "n_plus_one"
CHATTY_CALLS = "chatty_calls"
POOL_WAIT = "pool_wait"
SLOW_STATEMENT = "slow_statement"

_CHATTY_KINDS = frozenset({CallKind.HTTP, CallKind.RPC, CallKind.CACHE, CallKind.MESSAGING})
_DETAIL_CHARS = 120  # statement text shown in a detail line
_CACHE_LIMIT = 4096  # raw statement -> normalized, per accumulator
# Distinct statements / repeat targets kept per endpoint; beyond it (generated SQL with
# names the normalizer cannot collapse) new ones are pooled so memory stays bounded.
MAX_TARGETS_PER_ENDPOINT = 2000
OTHER_TARGETS = "(other statements)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """When a repeat is a finding. Every default says where it comes from."""

    # Sentry's N+1 DB query detector, as documented at
    # docs.sentry.io/product/issues/issue-details/performance-issues/n-one-queries/ :
    # the repeating spans must number "usually five" and their total duration "must
    # exceed 50ms" (older versions of that page said 100 ms); both are per-project
    # settings there too. Sentry only looks at sequential, non-overlapping spans; we
    # also count concurrent ones, costed by what they held the request up.
    n_plus_one_min_repeats: int = 5
    n_plus_one_min_ns: int = 50_000_000
    # Our addition: a fixed 50 ms floor misses the loop that dominates a fast endpoint
    # (20 x 2 ms selects in a 60 ms request). A repeat that costs at least this share
    # of its request's wall time is reported as well.
    n_plus_one_min_fraction: float = 0.10
    # A loop of outgoing calls is the network form of the same mistake (batch the
    # calls), so the same rule applies.
    chatty_min_repeats: int = 5
    chatty_min_ns: int = 50_000_000
    chatty_min_fraction: float = 0.10
    # An uncontended pool checkout takes microseconds; a millisecond per request means
    # requests queue for a connection or open a new one each time.
    pool_wait_min_ns: int = 1_000_000
    # Slow statements are a ranking; this many are reported per endpoint / overall.
    slow_statements_top: int = 5
    overall_slow_statements_top: int = 10

    def __post_init__(self) -> None:
        counts = (
            self.n_plus_one_min_repeats,
            self.chatty_min_repeats,
            self.slow_statements_top,
            self.overall_slow_statements_top,
        )
        if (
            any(c < 0 for c in counts)
            or min(self.n_plus_one_min_repeats, self.chatty_min_repeats) < 2
        ):
            raise ConfigError("finding thresholds: repeat counts must be >= 2 and tops >= 0")
        if min(self.n_plus_one_min_ns, self.chatty_min_ns, self.pool_wait_min_ns) < 0:
            raise ConfigError("finding thresholds: times must be >= 0 ns")
        for share in (self.n_plus_one_min_fraction, self.chatty_min_fraction):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"finding thresholds: share {share} is not in [0, 1]")


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True, kw_only=True)
class Repeat:
    """One target called repeatedly inside one request."""

    kind: str  # N_PLUS_ONE | CHATTY_CALLS
    target: str  # normalized statement or call target
    count: int
    booked_ns: int  # what the calls cost the request (overlap rule)
    duration_ns: int  # sum of their own durations
    concurrent: bool  # at least two of the calls overlapped


Normalizer = Callable[[str], str]


def _call_target(call: Call, normalize: Normalizer) -> str:
    # HTTP targets arrive as "METHOD host/route" with ids collapsed by classify; cache
    # commands can carry keys with ids, which the statement normalizer turns into ?.
    if call.kind == CallKind.CACHE:
        return normalize(call.target)
    return call.target


def _group_calls(
    request: Request, normalize: Normalizer
) -> tuple[dict[str, list[Call]], dict[str, list[Call]]]:
    """Statement -> its QUERY calls, and target -> its outgoing calls, in this request."""
    queries: dict[str, list[Call]] = {}
    outgoing: dict[str, list[Call]] = {}
    for call in request.calls:
        if call.kind == CallKind.QUERY:
            queries.setdefault(normalize(call.target), []).append(call)
        elif call.kind in _CHATTY_KINDS:
            outgoing.setdefault(_call_target(call, normalize), []).append(call)
    return queries, outgoing


def _overlapping(calls: list[Call]) -> bool:
    ordered = sorted(calls, key=lambda c: c.start_ns)
    reach = ordered[0].end_ns
    for call in ordered[1:]:
        if call.start_ns < reach:
            return True
        reach = max(reach, call.end_ns)
    return False


def _qualifying(
    kind: str,
    groups: dict[str, list[Call]],
    wall_ns: int,
    min_repeats: int,
    min_ns: int,
    min_fraction: float,
) -> Iterable[Repeat]:
    for target, calls in groups.items():
        if len(calls) < min_repeats:
            continue
        booked = sum(c.booked_ns for c in calls)
        if booked < min_ns and not (wall_ns > 0 and booked >= min_fraction * wall_ns):
            continue
        yield Repeat(
            kind=kind,
            target=target,
            count=len(calls),
            booked_ns=booked,
            duration_ns=sum(c.duration_ns for c in calls),
            concurrent=_overlapping(calls),
        )


def _repeats(
    request: Request,
    thresholds: Thresholds,
    queries: dict[str, list[Call]],
    outgoing: dict[str, list[Call]],
) -> tuple[Repeat, ...]:
    t = thresholds
    wall = request.wall_ns
    return (
        *_qualifying(
            N_PLUS_ONE,
            queries,
            wall,
            t.n_plus_one_min_repeats,
            t.n_plus_one_min_ns,
            t.n_plus_one_min_fraction,
        ),
        *_qualifying(
            CHATTY_CALLS,
            outgoing,
            wall,
            t.chatty_min_repeats,
            t.chatty_min_ns,
            t.chatty_min_fraction,
        ),
    )


def detect_repeats(request: Request, thresholds: Thresholds) -> tuple[Repeat, ...]:
    """The N+1 and chatty-call repeats in one request that meet ``thresholds``."""
    queries, outgoing = _group_calls(request, normalize_statement)
    return _repeats(request, thresholds, queries, outgoing)


@dataclass(slots=True)
class _Tally:
    """A finding in the making: summed over the requests where it occurred."""

    requests: int = 0
    count: int = 0
    booked_ns: int = 0
    concurrent: bool = False

    def merge(self, other: _Tally) -> None:
        self.requests += other.requests
        self.count += other.count
        self.booked_ns += other.booked_ns
        self.concurrent = self.concurrent or other.concurrent


@dataclass(slots=True)
class _Statement:
    tally: _Tally = field(default_factory=_Tally)
    durations: array[int] = field(default_factory=lambda: array("q"))


@dataclass(slots=True)
class _Endpoint:
    detailed: int = 0  # requests whose calls were kept
    totals_only: int = 0  # requests booked from ledger.* totals, no calls
    statements: dict[str, _Statement] = field(default_factory=dict)
    repeats: dict[tuple[str, str], _Tally] = field(default_factory=dict)
    pools: dict[str, _Tally] = field(default_factory=dict)


class FindingsAccumulator:
    """Streams requests in; answers findings per endpoint and across all of them."""

    def __init__(self, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = thresholds
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        # The same raw statement text recurs (bound parameters), normalize it once.
        self._normalized: dict[str, str] = {}

    def _normalize(self, sql: str) -> str:
        found = self._normalized.get(sql)
        if found is None:
            if len(self._normalized) >= _CACHE_LIMIT:
                self._normalized.clear()
            found = self._normalized[sql] = normalize_statement(sql)
        return found

    def add(self, request: Request) -> None:
        key = (request.service, request.endpoint)
        ep = self._endpoints.get(key)
        if ep is None:
            ep = self._endpoints[key] = _Endpoint()
        if request.from_totals and not request.calls:
            ep.totals_only += 1
            return
        ep.detailed += 1
        queries, outgoing = _group_calls(request, self._normalize)
        for statement, calls in queries.items():
            st = ep.statements.get(statement)
            if st is None:
                if len(ep.statements) >= MAX_TARGETS_PER_ENDPOINT:
                    statement = OTHER_TARGETS
                st = ep.statements.setdefault(statement, _Statement())
            st.tally.requests += 1
            st.tally.count += len(calls)
            st.tally.booked_ns += sum(c.booked_ns for c in calls)
            st.durations.extend(c.duration_ns for c in calls)
        for rep in _repeats(request, self.thresholds, queries, outgoing):
            key = (rep.kind, rep.target)
            tally = ep.repeats.get(key)
            if tally is None:
                if len(ep.repeats) >= MAX_TARGETS_PER_ENDPOINT:
                    key = (rep.kind, OTHER_TARGETS)
                tally = ep.repeats.setdefault(key, _Tally())
            tally.merge(_Tally(1, rep.count, rep.booked_ns, rep.concurrent))
        pools: dict[str, _Tally] = {}
        for call in request.calls:
            if call.kind == CallKind.POOL:
                one = pools.setdefault(call.system or "database", _Tally(requests=1))
                one.count += 1
                one.booked_ns += call.booked_ns
        for system, one in pools.items():
            ep.pools.setdefault(system, _Tally()).merge(one)

    def findings(self, service: str, endpoint: str, request_count: int) -> tuple[Finding, ...]:
        """One endpoint's findings; ``request_count`` is its number of requests."""
        ep = self._endpoints.get((service, endpoint))
        if ep is None:
            return ()
        return self._build(ep, request_count, self.thresholds.slow_statements_top)

    def overall(self, request_count: int) -> tuple[Finding, ...]:
        """Findings across every endpoint: slow statements ranked over all requests,
        and the repeats and pool waits of all endpoints merged by target."""
        merged = _Endpoint()
        for ep in self._endpoints.values():
            merged.detailed += ep.detailed
            merged.totals_only += ep.totals_only
            for statement, st in ep.statements.items():
                into = merged.statements.setdefault(statement, _Statement())
                into.tally.merge(st.tally)
                into.durations.extend(st.durations)
            for key, tally in ep.repeats.items():
                merged.repeats.setdefault(key, _Tally()).merge(tally)
            for system, tally in ep.pools.items():
                merged.pools.setdefault(system, _Tally()).merge(tally)
        return self._build(merged, request_count, self.thresholds.overall_slow_statements_top)

    def _build(self, ep: _Endpoint, request_count: int, top: int) -> tuple[Finding, ...]:
        kept = request_count - ep.totals_only
        base = kept if kept > 0 else max(ep.detailed, 1)
        out: list[Finding] = []
        for (kind, target), tally in ep.repeats.items():
            st = ep.statements.get(target) if kind == N_PLUS_ONE else None
            p50, p99 = _percentiles(st.durations) if st is not None else (0, 0)
            out.append(_finding(kind, target, tally, base, p50_ns=p50, p99_ns=p99))
        for system, tally in ep.pools.items():
            if tally.booked_ns >= self.thresholds.pool_wait_min_ns * tally.requests:
                out.append(_finding(POOL_WAIT, system, tally, base))
        ranked = sorted(ep.statements.items(), key=lambda kv: (-sum(kv[1].durations), kv[0]))
        for statement, st in ranked[:top]:
            p50, p99 = _percentiles(st.durations)
            out.append(
                _finding(
                    SLOW_STATEMENT,
                    statement,
                    st.tally,
                    base,
                    p50_ns=p50,
                    p99_ns=p99,
                    total_ns=sum(st.durations),
                )
            )
        out.sort(key=lambda f: (-f.saving_ns_per_request, f.kind, f.target))
        return tuple(out)


def _percentiles(values: array[int]) -> tuple[int, int]:
    """Nearest-rank p50 and p99."""
    if not values:
        return 0, 0
    ordered = sorted(values)
    n = len(ordered)
    return ordered[math.ceil(0.50 * n) - 1], ordered[math.ceil(0.99 * n) - 1]


def shorten(text: str, limit: int = _DETAIL_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _times(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _finding(
    kind: str,
    target: str,
    tally: _Tally,
    base: int,
    *,
    p50_ns: int = 0,
    p99_ns: int = 0,
    total_ns: int | None = None,
) -> Finding:
    per_request = tally.count / tally.requests if tally.requests else 0.0
    together = ", concurrently" if tally.concurrent else ""
    short = shorten(target)
    if kind == N_PLUS_ONE:
        detail = f"{short} run {_times(per_request)}x per request{together}"
    elif kind == CHATTY_CALLS:
        detail = f"{short} called {_times(per_request)}x per request{together}"
    elif kind == POOL_WAIT:
        detail = f"waiting for a {short} connection, {_times(per_request)}x per request"
    else:
        detail = f"{short}: {tally.count} calls, {_times(per_request)} per request"
    return Finding(
        kind=kind,
        detail=detail,
        target=target,
        count_per_request=per_request,
        ns_per_request=tally.booked_ns // tally.requests if tally.requests else 0,
        requests_fraction=min(1.0, tally.requests / base),
        total_ns=tally.booked_ns if total_ns is None else total_ns,
        count=tally.count,
        p50_ns=p50_ns,
        p99_ns=p99_ns,
        concurrent=tally.concurrent,
    )
