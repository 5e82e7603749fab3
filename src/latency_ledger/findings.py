"""Booked requests -> findings: the cheaper fixes a rewrite would have to beat.

Contract: :class:`FindingsAccumulator` takes :class:`~latency_ledger.model.Request`
records one at a time and keeps per endpoint x statement (or call target) counters and
one ``array('q')`` of call durations (and their weights) per statement, never
per-request rows; then ``findings()`` and ``overall()`` return
:class:`~latency_ledger.model.Finding` records, largest ``saving_ns_per_request``
first. :func:`detect_repeats` is the pure per-request step underneath. Findings carry
normalized statements only (``sql.normalize_statement``), never raw literals.

Kinds:

- ``n_plus_one``: one normalized statement run at least ``n_plus_one_min_repeats``
  times in a request, one after the other or concurrently, costing enough (below).
  Its cost is the calls' ``booked_ns``: for concurrent calls that is the time they
  really held the request up, not the sum of their durations.
- ``chatty_calls``: the same for every other kind of outgoing call to one target: HTTP,
  RPC, cache, messaging, and calls that carry none of those attributes (a Redis client
  span with only a name, a downstream service's request); the target is
  ``"METHOD host/route"``, the RPC method, or the normalized command / span name.
- ``pool_wait``: time spent waiting for a pooled database connection (opening a new
  connection is a ``connect`` call, not a pool wait: there may be no pool).
- ``slow_statement``: statements that are slow (own time at p50 at least
  ``slow_statement_min_ns`` and ``slow_statement_min_fraction`` of the endpoint's p50),
  ranked by total database time, with count, p50, p99.

What a fix saves (``Finding.fixable_ns_per_request``). Batching a repeat leaves about
one call: its saving is the calls' booked time minus the longest single call, never all
of it. For sequential calls that is N - 1 calls' time; for concurrent ones, whose booked
time is already what the overlap leaves, it is that minus one call (often little). A
slow statement or a pool wait can at best be removed whole, so its bound is its cost.

Setup statements (``SET``, ``SHOW``, ``PRAGMA``, ``BEGIN``/``COMMIT``, savepoints) are
never N+1 or slow-statement findings; their time stays in the ledger's database part.

Every count, cost and share is an estimate over all the endpoint's requests, not over
the kept trees: each kept request is weighted by ``1 / keep_probability`` (see
:class:`FindingsAccumulator`); a request booked from ``ledger.*`` totals carries no calls
and is stood for by the kept ones, but its database and network totals count: a cost is
estimated as its share of the database (network) time, times that time over every
request. Traces that do not record a keep probability weight every kept tree 1.
``overall()`` scales each
endpoint's kept trees to that endpoint's request count, so one endpoint's saving is
never averaged over another endpoint's requests as if they were its own.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

from latency_ledger.errors import ConfigError
from latency_ledger.model import Call, CallKind, Finding, Request
from latency_ledger.sql import normalize_statement

N_PLUS_ONE = "n_plus_one"
CHATTY_CALLS = "chatty_calls"
POOL_WAIT = "pool_wait"
SLOW_STATEMENT = "slow_statement"

# Every outgoing kind but the request's own client I/O (ASGI receive/send: streaming a
# response body in chunks is not a batching mistake) and database connection checkout.
_CHATTY_KINDS = frozenset(
    {CallKind.HTTP, CallKind.RPC, CallKind.CACHE, CallKind.MESSAGING, CallKind.OTHER}
)
# Targets that may carry ids or keys, normalized like statements.
_NORMALIZED_KINDS = frozenset({CallKind.CACHE, CallKind.OTHER})
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
    # Slow statements are a ranking of statements that are slow: one whose own time at
    # p50 is under both of these is a fast lookup, not a finding however often it runs
    # (its count shows in N+1 findings). 1 ms: a primary-key lookup takes tens of
    # microseconds on SQLite (0.02 ms at p50 on one app tried, issue 9) and well under a
    # millisecond on loopback PostgreSQL; 5% of the endpoint's p50 is where one statement
    # starts to matter to its latency.
    slow_statement_min_ns: int = 1_000_000
    slow_statement_min_fraction: float = 0.05
    # This many slow statements are reported per endpoint / overall.
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
        if (
            min(
                self.n_plus_one_min_ns,
                self.chatty_min_ns,
                self.pool_wait_min_ns,
                self.slow_statement_min_ns,
            )
            < 0
        ):
            raise ConfigError("finding thresholds: times must be >= 0 ns")
        for share in (
            self.n_plus_one_min_fraction,
            self.chatty_min_fraction,
            self.slow_statement_min_fraction,
        ):
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
    fixable_ns: int = 0  # what batching removes: booked minus one (the longest) call


Normalizer = Callable[[str], str]


def _call_target(call: Call, normalize: Normalizer) -> str:
    # HTTP targets arrive as "METHOD host/route" with ids collapsed by classify; cache
    # commands and bare span names can carry keys with ids, which the statement
    # normalizer turns into ?.
    if call.kind in _NORMALIZED_KINDS:
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
            fixable_ns=batching_saves(calls),
        )


def batching_saves(calls: Sequence[Call]) -> int:
    """What batching ``calls`` into one removes from the request: their booked time
    minus the one call that remains (the longest, so the bound is never generous)."""
    booked = sum(c.booked_ns for c in calls)
    longest = max((c.duration_ns for c in calls), default=0)
    return max(0, booked - longest)


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
    """A finding in the making: summed over the requests where it occurred.

    ``requests``/``count``/``booked_ns`` are as kept; the ``w_*`` sums weight each request
    by ``w = 1 / keep_probability`` (how many requests its tree stands for) and the
    ``v_*`` sums by ``w * (w - 1)``, what the estimate's variance needs (zero for a tree
    that was certain to be kept); ``v_cross`` pairs the cost with the request's
    auxiliary total (its database or network time, see :class:`_Base`)."""

    requests: int = 0
    count: int = 0
    booked_ns: int = 0
    concurrent: bool = False
    w: float = 0.0
    w_count: float = 0.0
    w_booked: float = 0.0
    v_booked: float = 0.0
    v_booked2: float = 0.0
    w_fixable: float = 0.0  # weighted sum of what the fix removes (<= w_booked)
    v_cross: float = 0.0

    def merge(self, other: _Tally, scale: float = 1.0) -> None:
        """Add ``other``, its weights multiplied by ``scale`` (overall: each endpoint's
        kept trees scaled to stand for that endpoint's requests)."""
        self.requests += other.requests
        self.count += other.count
        self.booked_ns += other.booked_ns
        self.concurrent = self.concurrent or other.concurrent
        self.w += other.w * scale
        self.w_count += other.w_count * scale
        self.w_booked += other.w_booked * scale
        self.v_booked += other.v_booked * scale * scale
        self.v_booked2 += other.v_booked2 * scale * scale
        self.w_fixable += other.w_fixable * scale
        self.v_cross += other.v_cross * scale * scale

    def add(
        self,
        weight: float,
        count: int,
        booked_ns: int,
        aux_ns: int,
        concurrent: bool = False,
        fixable_ns: int | None = None,
    ) -> None:
        """One request where it occurred, ``count`` times, costing ``booked_ns``, of
        which a fix removes ``fixable_ns`` (all of it when None), in a request whose
        auxiliary total is ``aux_ns``."""
        variance = weight * (weight - 1.0)
        self.requests += 1
        self.count += count
        self.booked_ns += booked_ns
        self.concurrent = self.concurrent or concurrent
        self.w += weight
        self.w_count += weight * count
        self.w_booked += weight * booked_ns
        self.v_booked += variance * booked_ns
        self.v_booked2 += variance * booked_ns * booked_ns
        self.w_fixable += weight * (booked_ns if fixable_ns is None else fixable_ns)
        self.v_cross += variance * booked_ns * aux_ns


@dataclass(slots=True)
class _Aux:
    """An auxiliary total known for every request, kept or not (``ledger.*`` totals): the
    database or the network part. ``total_ns`` over all requests; ``w_ns``/``v_ns2``
    over the kept ones, weighted as in :class:`_Tally`."""

    total_ns: int = 0
    w_ns: float = 0.0
    v_ns2: float = 0.0

    def merge(self, other: _Aux, scale: float = 1.0) -> None:
        self.total_ns += other.total_ns  # known, not estimated: never scaled
        self.w_ns += other.w_ns * scale
        self.v_ns2 += other.v_ns2 * scale * scale


@dataclass(slots=True)
class _Statement:
    tally: _Tally = field(default_factory=_Tally)
    durations: array[int] = field(default_factory=lambda: array("q"))
    weights: array[float] = field(default_factory=lambda: array("d"))  # one per duration


@dataclass(slots=True)
class _Endpoint:
    detailed: int = 0  # requests whose calls were kept
    totals_only: int = 0  # requests booked from ledger.* totals, no calls
    weight: float = 0.0  # the requests the kept ones stand for (sum of 1 / keep_probability)
    variance: float = 0.0  # sum of w * (w - 1) over the kept requests
    database: _Aux = field(default_factory=_Aux)
    network: _Aux = field(default_factory=_Aux)
    statements: dict[str, _Statement] = field(default_factory=dict)
    repeats: dict[tuple[str, str], _Tally] = field(default_factory=dict)
    pools: dict[str, _Tally] = field(default_factory=dict)

    def merge(self, other: _Endpoint, scale: float = 1.0) -> None:
        """Add ``other``, its weights multiplied by ``scale`` (see ``_Tally.merge``)."""
        self.detailed += other.detailed
        self.totals_only += other.totals_only
        self.weight += other.weight * scale
        self.variance += other.variance * scale * scale
        self.database.merge(other.database, scale)
        self.network.merge(other.network, scale)
        for statement, st in other.statements.items():
            into = self.statements.setdefault(statement, _Statement())
            into.tally.merge(st.tally, scale)
            into.durations.extend(st.durations)
            into.weights.extend(w * scale for w in st.weights)
        for key, tally in other.repeats.items():
            self.repeats.setdefault(key, _Tally()).merge(tally, scale)
        for system, tally in other.pools.items():
            self.pools.setdefault(system, _Tally()).merge(tally, scale)


# A statement that sets up a connection or a transaction: its cost is real database time
# (a COMMIT's fsync is booked in the ledger), but "run fewer of them" or "add an index"
# is not the fix, so it is never an N+1 or a slow-statement finding.
SETUP_KEYWORDS = frozenset(
    {
        "SET",
        "SHOW",
        "PRAGMA",
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "RESET",
        "DISCARD",
        "DEALLOCATE",
        "USE",
        "CONNECT",
    }
)


def is_setup_statement(statement: str) -> bool:
    """Connection or transaction setup (``SET``, ``SHOW``, ``PRAGMA``, ``BEGIN``,
    ``COMMIT``, ``SAVEPOINT``...), not a query a fix could remove or speed up."""
    head = statement[:24].lstrip().split(None, 1)
    return bool(head) and head[0].rstrip(";").upper() in SETUP_KEYWORDS


class FindingsAccumulator:
    """Streams requests in; answers findings per endpoint and across all of them.

    Every figure is an estimate over all the endpoint's requests: a request whose tree was
    kept with probability ``p`` (``Request.keep_probability``, recorded by the collector)
    stands for ``1 / p`` requests (Horvitz-Thompson weights; shares and per-request
    figures are their ratio, Hajek's estimator, whose error does not grow with how many
    trees the random draw happened to keep). So the slow and failed trees the collector
    keeps with certainty count once each, and the 1% random ones stand for the rest.
    Costs are ratio estimates on the database (network) time every request reports
    (:meth:`_Base.cost_per_request`). ``Finding.margin_fraction`` says how sure the cost
    is.
    """

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
        database_ns, network_ns = request.ledger.database_ns, request.ledger.network_ns
        ep.database.total_ns += database_ns
        ep.network.total_ns += network_ns
        if request.from_totals and not request.calls:
            ep.totals_only += 1
            return
        weight = 1.0 / request.keep_probability
        variance = weight * (weight - 1.0)
        ep.detailed += 1
        ep.weight += weight
        ep.variance += variance
        ep.database.w_ns += weight * database_ns
        ep.database.v_ns2 += variance * database_ns * database_ns
        ep.network.w_ns += weight * network_ns
        ep.network.v_ns2 += variance * network_ns * network_ns
        queries, outgoing = _group_calls(request, self._normalize)
        for statement, calls in queries.items():
            st = ep.statements.get(statement)
            if st is None:
                if len(ep.statements) >= MAX_TARGETS_PER_ENDPOINT:
                    statement = OTHER_TARGETS
                st = ep.statements.setdefault(statement, _Statement())
            st.tally.add(weight, len(calls), sum(c.booked_ns for c in calls), database_ns)
            st.durations.extend([c.end_ns - c.start_ns for c in calls])
            st.weights.extend(repeat(weight, len(calls)))
        for rep in _repeats(request, self.thresholds, queries, outgoing):
            key = (rep.kind, rep.target)
            tally = ep.repeats.get(key)
            if tally is None:
                if len(ep.repeats) >= MAX_TARGETS_PER_ENDPOINT:
                    key = (rep.kind, OTHER_TARGETS)
                tally = ep.repeats.setdefault(key, _Tally())
            aux = database_ns if rep.kind == N_PLUS_ONE else network_ns
            tally.add(weight, rep.count, rep.booked_ns, aux, rep.concurrent, rep.fixable_ns)
        pools: dict[str, tuple[int, int]] = {}
        for call in request.calls:
            if call.kind == CallKind.POOL:
                system = call.system or "database"
                count, booked = pools.get(system, (0, 0))
                pools[system] = (count + 1, booked + call.booked_ns)
        for system, (count, booked) in pools.items():
            ep.pools.setdefault(system, _Tally()).add(weight, count, booked, database_ns)

    def merge(self, other: FindingsAccumulator, rename: Mapping[tuple[str, str], str]) -> None:
        """Add ``other``'s endpoints; ``rename`` gives the endpoint each goes to here."""
        for (service, endpoint), ep in other._endpoints.items():
            key = (service, rename.get((service, endpoint), endpoint))
            into = self._endpoints.get(key)
            if into is None:
                into = self._endpoints[key] = _Endpoint()
            into.merge(ep)

    def findings(
        self, service: str, endpoint: str, request_count: int, p50_ns: int = 0
    ) -> tuple[Finding, ...]:
        """One endpoint's findings; ``request_count`` is its number of requests and
        ``p50_ns`` its median latency (what a slow statement must be material to)."""
        ep = self._endpoints.get((service, endpoint))
        if ep is None:
            return ()
        return self._build(ep, self.thresholds.slow_statements_top, p50_ns)

    def overall(
        self, counts: Mapping[tuple[str, str], int], request_count: int, p50_ns: int = 0
    ) -> tuple[Finding, ...]:
        """Findings across every endpoint: slow statements ranked over all requests,
        and the repeats and pool waits of all endpoints merged by target.

        ``counts`` maps (service, endpoint) to its number of requests: each endpoint's
        kept trees are scaled to stand for that many, so a finding's share and its
        saving per request are over all ``request_count`` requests, each endpoint
        weighing what its requests weigh. An endpoint with no kept tree says nothing."""
        merged = _Endpoint()
        for key, ep in self._endpoints.items():
            if ep.weight <= 0:
                continue
            merged.merge(ep, counts.get(key, ep.detailed + ep.totals_only) / ep.weight)
        merged.weight = max(merged.weight, float(request_count))
        return self._build(merged, self.thresholds.overall_slow_statements_top, p50_ns)

    def _build(self, ep: _Endpoint, top: int, p50_ns: int) -> tuple[Finding, ...]:
        t = self.thresholds
        weight = ep.weight or 1.0
        requests = ep.detailed + ep.totals_only
        base = _Base(weight=weight, variance=ep.variance, requests=requests, aux=ep.database)
        network_base = _Base(weight=weight, variance=ep.variance, requests=requests, aux=ep.network)
        out: list[Finding] = []
        for (kind, target), tally in ep.repeats.items():
            if kind == N_PLUS_ONE and is_setup_statement(target):
                continue
            st = ep.statements.get(target) if kind == N_PLUS_ONE else None
            p50, p99 = _percentiles(st.durations, st.weights) if st is not None else (0, 0)
            on = base if kind == N_PLUS_ONE else network_base
            out.append(_finding(kind, target, tally, on, p50_ns=p50, p99_ns=p99))
        for system, tally in ep.pools.items():
            if tally.w_booked >= t.pool_wait_min_ns * tally.w:
                out.append(_finding(POOL_WAIT, system, tally, base))
        # "slow" means slow: the statement's own time at p50 is material for the endpoint
        floor = max(t.slow_statement_min_ns, int(t.slow_statement_min_fraction * p50_ns))
        slow = []
        for statement, st in ep.statements.items():
            if is_setup_statement(statement):
                continue
            p50, p99 = _percentiles(st.durations, st.weights)
            if p50 >= floor:
                total = sum(d * w for d, w in zip(st.durations, st.weights, strict=True))
                slow.append((-total, statement, st, p50, p99, total))
        slow.sort(key=lambda row: (row[0], row[1]))
        for _, statement, st, p50, p99, total in slow[:top]:
            out.append(
                _finding(
                    SLOW_STATEMENT,
                    statement,
                    st.tally,
                    base,
                    p50_ns=p50,
                    p99_ns=p99,
                    total_ns=round(total),
                )
            )
        out.sort(key=lambda f: (-f.saving_ns_per_request, f.kind, f.target))
        return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Base:
    """The requests a finding's figures are of: the kept trees' summed weight and
    variance term, every request's count, and the auxiliary total the cost is a share of
    (database time for statements and pool waits, network time for outgoing calls)."""

    weight: float
    variance: float
    requests: int
    aux: _Aux

    def ratio(self, tally: _Tally) -> float | None:
        """The cost as a share of the auxiliary total, when that is known (else None)."""
        if self.aux.w_ns <= 0 or self.aux.total_ns <= 0 or self.requests <= 0:
            return None
        return tally.w_booked / self.aux.w_ns

    def cost_per_request(self, tally: _Tally) -> float:
        """The finding's cost averaged over every request.

        A ratio estimator where the auxiliary total is known for every request: the
        kept trees say what share of the database (or network) time the finding takes,
        the ``ledger.*`` totals of all requests say how much of that time there was. Its
        error follows how much that share varies between requests, not how much the
        cost does, so it stays small with few kept trees when the share is steady (an
        N+1 takes the same share of a slow request's database time as of a fast one's).
        Else Hajek's: the weighted mean over the kept trees."""
        share = self.ratio(tally)
        if share is None:
            return tally.w_booked / self.weight
        return share * self.aux.total_ns / self.requests


def _percentiles(values: array[int], weights: array[float]) -> tuple[int, int]:
    """Weighted nearest-rank p50 and p99: the smallest value whose cumulative weight
    reaches the rank (plain nearest rank when every weight is 1)."""
    if not values:
        return 0, 0
    if weights.count(1.0) == len(weights):
        return _unweighted_percentiles(values)
    pairs = sorted(zip(values, weights, strict=True))
    total = sum(weights)
    out = []
    for q in (0.50, 0.99):
        rank = q * total
        cumulative = 0.0
        found = pairs[-1][0]
        for value, weight in pairs:
            cumulative += weight
            if cumulative >= rank - 1e-9 * total:
                found = value
                break
        out.append(found)
    return out[0], out[1]


def _unweighted_percentiles(values: array[int]) -> tuple[int, int]:
    """:func:`_percentiles` when every weight is 1: the cumulative weight after ``i``
    values is ``i`` exactly, so the value reached is at an index, not found by a walk."""
    ordered = sorted(values)
    count = len(ordered)
    out = []
    for q in (0.50, 0.99):
        reach = q * count - 1e-9 * count  # the walk's test: cumulative >= reach
        index = max(1, math.ceil(reach)) - 1
        out.append(ordered[index] if index < count else ordered[-1])
    return out[0], out[1]


def shorten(text: str, limit: int = _DETAIL_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _times(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def margin(tally: _Tally, base: _Base) -> float:
    """95% half-width of the estimated cost per request, relative to it: the linearized
    variance under Poisson sampling, sum of ``w (w - 1) (y - R x)^2`` over the kept
    requests (``y``: the request's cost, 0 where it did not occur; ``x``: its auxiliary
    total, or 1 for Hajek's estimator). 0.0 when every tree was certain to be kept."""
    if tally.w_booked <= 0 or base.weight <= 0:
        return 0.0
    share = base.ratio(tally)
    if share is None:
        share = tally.w_booked / base.weight
        spread = tally.v_booked2 - 2.0 * share * tally.v_booked + share * share * base.variance
        scale = base.weight
    else:
        spread = tally.v_booked2 - 2.0 * share * tally.v_cross + share * share * base.aux.v_ns2
        scale = base.aux.w_ns
    if spread <= 0:
        return 0.0
    return 1.96 * math.sqrt(spread) / scale / share


def _finding(
    kind: str,
    target: str,
    tally: _Tally,
    base: _Base,
    *,
    p50_ns: int = 0,
    p99_ns: int = 0,
    total_ns: int | None = None,
) -> Finding:
    per_request = tally.w_count / tally.w if tally.w else 0.0
    count = round(tally.w_count)
    together = ", concurrently" if tally.concurrent else ""
    short = shorten(target)
    if kind == N_PLUS_ONE:
        detail = f"{short} run {_times(per_request)}x per request{together}"
    elif kind == CHATTY_CALLS:
        detail = f"{short} called {_times(per_request)}x per request{together}"
    elif kind == POOL_WAIT:
        detail = f"waiting for a {short} connection, {_times(per_request)}x per request"
    else:
        detail = f"{short}: {count} calls, {_times(per_request)} per request"
    fraction = min(1.0, tally.w / base.weight)
    affected = base.cost_per_request(tally) / fraction if fraction > 0 else 0.0
    fixable = min(1.0, tally.w_fixable / tally.w_booked) if tally.w_booked > 0 else 1.0
    return Finding(
        kind=kind,
        detail=detail,
        target=target,
        count_per_request=per_request,
        ns_per_request=round(affected),
        requests_fraction=fraction,
        total_ns=round(base.cost_per_request(tally) * base.requests)
        if total_ns is None
        else total_ns,
        count=count,
        p50_ns=p50_ns,
        p99_ns=p99_ns,
        concurrent=tally.concurrent,
        margin_fraction=margin(tally, base),
        sampled_requests=tally.requests,
        fixable_ns_per_request=round(affected * fixable),
    )
