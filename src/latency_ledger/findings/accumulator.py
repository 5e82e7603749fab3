"""Booked requests, one at a time -> findings per endpoint and overall.

Contract: :class:`FindingsAccumulator` takes :class:`~latency_ledger.model.Request`
records one at a time and keeps per endpoint x statement (or call target) counters and
one ``array('q')`` of call durations (and their weights) per statement (folded into a
``sketch.DurationSketch`` past ``sketch.EXACT_LIMIT`` calls), never per-request rows
(at most ``MAX_TARGETS_PER_ENDPOINT`` targets an endpoint; the rest are
pooled under ``OTHER_TARGETS``); then ``findings()`` and ``overall()`` return
:class:`~latency_ledger.model.Finding` records, largest ``saving_ns_per_request`` first,
their figures estimated over every request (:mod:`.estimate`) and their detail line
written here (targets cut by :func:`shorten`). Findings carry normalized statements
only, never raw literals.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat

from latency_ledger.findings.counted import FOLDED, Counted
from latency_ledger.findings.estimate import Aux, Base, Tally, margin, percentiles
from latency_ledger.findings.repeats import (
    CHATTY_KINDS,
    NORMALIZED_KINDS,
    call_rows,
    overlapping,
    qualifying,
    saves,
)
from latency_ledger.findings.thresholds import (
    CHATTY_CALLS,
    DEFAULT_THRESHOLDS,
    N_PLUS_ONE,
    POOL_WAIT,
    SLOW_STATEMENT,
    Thresholds,
    is_setup_statement,
)
from latency_ledger.model import (
    ROW_BOOKED,
    ROW_END,
    ROW_KIND,
    ROW_START,
    ROW_SYSTEM,
    ROW_TARGET,
    CallKind,
    CallRow,
    Finding,
    Request,
)
from latency_ledger.sketch import EXACT_LIMIT, DurationSketch
from latency_ledger.sql import normalize_statement, statement_fingerprint

_DETAIL_CHARS = 120  # statement text shown in a detail line
_CACHE_LIMIT = 4096  # raw statement -> normalized, per accumulator
# Distinct statements / repeat targets kept per endpoint; beyond it (generated SQL with
# names the normalizer cannot collapse) new ones are pooled so memory stays bounded.
MAX_TARGETS_PER_ENDPOINT = 2000
OTHER_TARGETS = "(other statements)"
_QUERY, _POOL = CallKind.QUERY, CallKind.POOL


@dataclass(slots=True)
class _Statement:
    tally: Tally = field(default_factory=Tally)
    durations: array[int] = field(default_factory=lambda: array("q"))
    weights: array[float] = field(default_factory=lambda: array("d"))  # one per duration
    # past EXACT_LIMIT calls the durations go here instead (sketch.py)
    sketch: DurationSketch | None = None

    def add(self, durations: list[int], weight: float) -> None:
        if self.sketch is not None:
            self.sketch.add(durations, repeat(weight, len(durations)))
            return
        self.durations.extend(durations)
        self.weights.extend(repeat(weight, len(durations)))
        if len(self.durations) > EXACT_LIMIT:
            self._fold()

    def merge(self, other: _Statement, scale: float) -> None:
        """Add ``other``'s calls, their weights multiplied by ``scale``."""
        self.tally.merge(other.tally, scale)
        exact = self.sketch is None and other.sketch is None
        if exact and len(self.durations) + len(other.durations) <= EXACT_LIMIT:
            self.durations.extend(other.durations)
            if scale == 1.0:  # w * 1.0 is w: one copy in C, not a Python step per call
                self.weights.extend(other.weights)
            else:
                self.weights.extend(w * scale for w in other.weights)
            return
        sketch = self._fold()
        sketch.add(other.durations, other.weights, scale)
        if other.sketch is not None:
            sketch.merge(other.sketch, scale)

    def _fold(self) -> DurationSketch:
        if self.sketch is None:
            self.sketch = DurationSketch()
        self.sketch.add(self.durations, self.weights)
        self.durations, self.weights = array("q"), array("d")
        return self.sketch

    def percentiles(self) -> tuple[int, int]:
        if self.sketch is not None:
            return self.sketch.percentiles()
        return percentiles(self.durations, self.weights)


@dataclass(slots=True)
class _Endpoint:
    detailed: int = 0  # requests whose calls were kept
    totals_only: int = 0  # requests booked from ledger.* totals, no calls
    weight: float = 0.0  # the requests the kept ones stand for (sum of 1 / keep_probability)
    variance: float = 0.0  # sum of w * (w - 1) over the kept requests
    database: Aux = field(default_factory=Aux)
    network: Aux = field(default_factory=Aux)
    statements: dict[str, _Statement] = field(default_factory=dict)
    repeats: dict[tuple[str, str], Tally] = field(default_factory=dict)
    pools: dict[str, Tally] = field(default_factory=dict)
    # the requests whose statements the collector counted (counted.py), None: none was
    counted: Counted | None = None

    def merge(self, other: _Endpoint, scale: float = 1.0) -> None:
        """Add ``other``, its weights multiplied by ``scale`` (see ``Tally.merge``); its
        counted requests are added as they are (counts, never scaled)."""
        if other.counted is not None:
            if self.counted is None:
                self.counted = Counted()
            self.counted.merge(other.counted)
        self.detailed += other.detailed
        self.totals_only += other.totals_only
        self.weight += other.weight * scale
        self.variance += other.variance * scale * scale
        self.database.merge(other.database, scale)
        self.network.merge(other.network, scale)
        for statement, st in other.statements.items():
            self.statements.setdefault(statement, _Statement()).merge(st, scale)
        for key, tally in other.repeats.items():
            self.repeats.setdefault(key, Tally()).merge(tally, scale)
        for system, tally in other.pools.items():
            self.pools.setdefault(system, Tally()).merge(tally, scale)


class FindingsAccumulator:
    """Streams requests in; answers findings per endpoint and across all of them.

    Every figure is an estimate over all the endpoint's requests: a request whose tree was
    kept with probability ``p`` (``Request.keep_probability``, recorded by the collector)
    stands for ``1 / p`` requests (Horvitz-Thompson weights; shares and per-request
    figures are their ratio, Hajek's estimator, whose error does not grow with how many
    trees the random draw happened to keep). So the slow and failed trees the collector
    keeps with certainty count once each, and the 1% random ones stand for the rest.
    Costs are ratio estimates on the database (network) time every request reports
    (:meth:`Base.cost_per_request`). ``Finding.margin_fraction`` says how sure the cost
    is. Where every request of an endpoint carries its counted statements
    (``Request.statements``), N+1 and slow statements are counted from those instead
    (:mod:`.counted`, ``Finding.counted``): exact, and no kept call counted again.
    """

    def __init__(self, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = thresholds
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        # The same raw statement text recurs (bound parameters), normalize it once.
        self._normalized: dict[str, str] = {}
        # statement fingerprint -> normalized text, as counted requests carried it
        self._texts: dict[int, str] = {}

    def _normalize(self, sql: str) -> str:
        found = self._normalized.get(sql)
        if found is None:
            if len(self._normalized) >= _CACHE_LIMIT:
                self._normalized.clear()
            found = self._normalized[sql] = normalize_statement(sql)
        return found

    def add(self, request: Request, rows: list[CallRow] | None = None) -> None:
        """One request; ``rows``: its calls as rows (:data:`CallRow`), given instead of
        ``request.calls`` by a caller that has them so (``ledger.book_trace_rows``)."""
        key = (request.service, request.endpoint)
        ep = self._endpoints.get(key)
        if ep is None:
            ep = self._endpoints[key] = _Endpoint()
        ledger = request.ledger
        database_ns, network_ns = ledger.database_ns, ledger.network_ns
        ep.database.total_ns += database_ns
        ep.network.total_ns += network_ns
        tallies = request.statements
        if tallies is not None:  # counted in the app: the statements of every request
            counted = ep.counted
            if counted is None:
                counted = ep.counted = Counted()
            counted.add(tallies, request.wall_ns, database_ns, self.thresholds, self._texts)
        calls = call_rows(request.calls) if rows is None else rows
        if request.from_totals and not calls:
            ep.totals_only += 1
            return
        weight = 1.0 / request.keep_probability
        ep.detailed += 1
        ep.weight += weight
        ep.database.w_ns += weight * database_ns
        ep.network.w_ns += weight * network_ns
        variance = weight * (weight - 1.0)
        if variance:  # 0 for a tree kept for certain (see Tally.add)
            ep.variance += variance
            ep.database.v_ns2 += variance * database_ns * database_ns
            ep.network.v_ns2 += variance * network_ns * network_ns
        if not calls:
            return
        # One pass over the calls (repeats.group_calls, and the pool waits, together):
        # this runs once per call of every request.
        queries: dict[str, list[CallRow]] = {}
        outgoing: dict[str, list[CallRow]] = {}
        pools: dict[str, tuple[int, int]] = {}
        normalized = self._normalized.get
        for call in calls:
            kind = call[ROW_KIND]
            if kind == _QUERY:
                statement = normalized(call[ROW_TARGET]) or self._normalize(call[ROW_TARGET])
                group = queries.get(statement)
                if group is None:
                    queries[statement] = [call]
                else:
                    group.append(call)
            elif kind in CHATTY_KINDS:
                target = call[ROW_TARGET]
                if kind in NORMALIZED_KINDS:
                    target = normalized(target) or self._normalize(target)
                group = outgoing.get(target)
                if group is None:
                    outgoing[target] = [call]
                else:
                    group.append(call)
            elif kind == _POOL:
                system = call[ROW_SYSTEM] or "database"
                count, booked = pools.get(system, (0, 0))
                pools[system] = (count + 1, booked + call[ROW_BOOKED])
        statements = ep.statements
        for statement, group in queries.items():
            st = statements.get(statement)
            if st is None:
                if len(statements) >= MAX_TARGETS_PER_ENDPOINT:
                    statement = OTHER_TARGETS
                st = statements.setdefault(statement, _Statement())
            st.tally.add(weight, len(group), sum([c[ROW_BOOKED] for c in group]), database_ns)
            st.add([c[ROW_END] - c[ROW_START] for c in group], weight)
        t = self.thresholds
        wall = request.wall_ns
        for repeat_kind, groups, minimum, min_ns, min_fraction, aux in (
            (
                N_PLUS_ONE,
                queries,
                t.n_plus_one_min_repeats,
                t.n_plus_one_min_ns,
                t.n_plus_one_min_fraction,
                database_ns,
            ),
            (
                CHATTY_CALLS,
                outgoing,
                t.chatty_min_repeats,
                t.chatty_min_ns,
                t.chatty_min_fraction,
                network_ns,
            ),
        ):
            for target, group, booked in qualifying(groups, wall, minimum, min_ns, min_fraction):
                key2 = (repeat_kind, target)
                tally = ep.repeats.get(key2)
                if tally is None:
                    if len(ep.repeats) >= MAX_TARGETS_PER_ENDPOINT:
                        key2 = (repeat_kind, OTHER_TARGETS)
                    tally = ep.repeats.setdefault(key2, Tally())
                tally.add(
                    weight,
                    len(group),
                    booked,
                    aux,
                    overlapping(group),
                    saves(group, booked),
                )
        for system, (count, booked) in pools.items():
            ep.pools.setdefault(system, Tally()).add(weight, count, booked, database_ns)

    def merge(self, other: FindingsAccumulator, rename: Mapping[tuple[str, str], str]) -> None:
        """Add ``other``'s endpoints; ``rename`` gives the endpoint each goes to here."""
        for fingerprint, text in other._texts.items():
            self._texts.setdefault(fingerprint, text)
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
        base = Base(weight=weight, variance=ep.variance, requests=requests, aux=ep.database)
        network_base = Base(weight=weight, variance=ep.variance, requests=requests, aux=ep.network)
        # every request's statements counted in the app: N+1 and slow statements from
        # those counts (exact), not from the kept trees (counted.py)
        counted = ep.counted if ep.counted is not None and ep.counted.requests == requests else None
        out: list[Finding] = []
        for (kind, target), tally in ep.repeats.items():
            if kind == N_PLUS_ONE and (counted is not None or is_setup_statement(target)):
                continue
            st = ep.statements.get(target) if kind == N_PLUS_ONE else None
            p50, p99 = st.percentiles() if st is not None else (0, 0)
            on = base if kind == N_PLUS_ONE else network_base
            out.append(_finding(kind, target, tally, on, p50_ns=p50, p99_ns=p99, kept=st))
        for system, tally in ep.pools.items():
            if tally.w_booked >= t.pool_wait_min_ns * tally.w:
                out.append(_finding(POOL_WAIT, system, tally, base))
        # "slow" means slow: the statement's own time at p50 is material for the endpoint
        floor = max(t.slow_statement_min_ns, int(t.slow_statement_min_fraction * p50_ns))
        if counted is not None:
            out.extend(self._counted(ep, counted, top, floor))
            out.sort(key=lambda f: (-f.saving_ns_per_request, f.kind, f.target))
            return tuple(out)
        slow = []
        for statement, st in ep.statements.items():
            if is_setup_statement(statement):
                continue
            p50, p99 = st.percentiles()
            if p50 >= floor:
                # over every request, as the cost per request is (a share of the database
                # time all requests reported), not the kept calls' weighted durations
                total = base.cost_per_request(st.tally) * base.requests
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
                    kept=st,
                )
            )
        out.sort(key=lambda f: (-f.saving_ns_per_request, f.kind, f.target))
        return tuple(out)

    def _counted(self, ep: _Endpoint, counted: Counted, top: int, floor: int) -> list[Finding]:
        """N+1 and slow-statement findings from every request's counted statements; the
        kept trees give each statement's text where no request carried it, its p50 and
        p99, and whether its calls overlapped."""
        base = counted.base()
        texts = {statement_fingerprint(text): text for text in ep.statements}
        out: list[Finding] = []
        for fingerprint, tally in counted.repeats.items():
            st, text = self._kept(ep, texts, fingerprint)
            if is_setup_statement(text):
                continue
            p50, p99 = st.percentiles() if st is not None else (0, 0)
            kept = ep.repeats.get((N_PLUS_ONE, text))
            if kept is not None and kept.concurrent:
                tally.concurrent = True
            out.append(
                _finding(
                    N_PLUS_ONE,
                    text,
                    tally,
                    base,
                    p50_ns=p50,
                    p99_ns=p99,
                    kept=st,
                    counted=True,
                )
            )
        slow = []
        for fingerprint, tally in counted.statements.items():
            if fingerprint == FOLDED:
                continue
            st, text = self._kept(ep, texts, fingerprint)
            if st is None or is_setup_statement(text):
                continue  # no kept call: no p50 to call it slow by
            p50, p99 = st.percentiles()
            # The kept calls lean on the slow trees (at 1% a fast lookup's p50 read 4.7x);
            # the counted mean per call holds for every request, and a latency's median
            # lies below its mean (right-skewed), so a mean under the line is not slow.
            if p50 >= floor and tally.booked_ns >= floor * tally.count:
                slow.append((-tally.w_booked, text, tally, st, p50, p99))
        slow.sort(key=lambda row: (row[0], row[1]))
        for _, text, tally, st, p50, p99 in slow[:top]:
            out.append(
                _finding(
                    SLOW_STATEMENT,
                    text,
                    tally,
                    base,
                    p50_ns=p50,
                    p99_ns=p99,
                    kept=st,
                    counted=True,
                )
            )
        return out

    def _kept(
        self, ep: _Endpoint, texts: Mapping[int, str], fingerprint: int
    ) -> tuple[_Statement | None, str]:
        """A counted statement's kept calls (None: none kept) and its text."""
        text = texts.get(fingerprint) or self._texts.get(fingerprint)
        if text is None:
            return None, f"(statement {fingerprint:016x}: its text is in no kept trace)"
        return ep.statements.get(text), text


def shorten(text: str, limit: int = _DETAIL_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _times(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _finding(
    kind: str,
    target: str,
    tally: Tally,
    base: Base,
    *,
    p50_ns: int = 0,
    p99_ns: int = 0,
    total_ns: int | None = None,
    kept: _Statement | None = None,
    counted: bool = False,
) -> Finding:
    """The finding of ``tally`` on ``base``; ``kept``: the kept calls its p50 and p99 come
    from; ``counted``: counted over every request (counted.py), not estimated."""
    per_request = tally.w_count / tally.w if tally.w else 0.0
    # every request's calls: the kept trees' weighted count scaled to the requests they
    # stand for (count per request x share of requests x requests), not the weighted sum
    count = round(tally.w_count * base.requests / base.weight)
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
        sampled_requests=tally.requests if not counted else (kept.tally.requests if kept else 0),
        fixable_ns_per_request=round(affected * fixable),
        counted=counted,
        p50_calls=kept.tally.count if kept is not None else 0,
    )
