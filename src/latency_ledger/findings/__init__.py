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

Every count, cost and share holds for all the endpoint's requests, not for the kept
trees. Where the in-app collector counted every request's statements
(``Request.statements``, on every request of the endpoint), N+1 and slow-statement
counts, costs and shares are sums over those counts, exact (:mod:`.counted`); the kept
trees give the per-call p50 and p99, overlap, and a text no request carried. Else each
figure is an estimate: each kept request is weighted by ``1 / keep_probability`` (see
:class:`FindingsAccumulator`); a request booked from ``ledger.*`` totals carries no calls
and is stood for by the kept ones, but its database and network totals count: a cost is
estimated as its share of the database (network) time, times that time over every
request. Traces that do not record a keep probability weight every kept tree 1.
``overall()`` scales each
endpoint's kept trees to that endpoint's request count, so one endpoint's saving is
never averaged over another endpoint's requests as if they were its own.

Modules, each depending only on those before it: :mod:`.thresholds` (the kinds, when
each is a finding, setup statements) -> :mod:`.repeats` (one request's N+1 and chatty
calls) and :mod:`.estimate` (weighted sums, cost per request, margin, percentiles) ->
:mod:`.counted` (every request's counted statements) -> :mod:`.accumulator` (per
endpoint and overall, the ``Finding`` records). The names below are the package's
public face; import them from here.
"""

from __future__ import annotations

from latency_ledger.findings.accumulator import (
    MAX_TARGETS_PER_ENDPOINT,
    OTHER_TARGETS,
    FindingsAccumulator,
    shorten,
)
from latency_ledger.findings.estimate import margin
from latency_ledger.findings.repeats import Normalizer, Repeat, batching_saves, detect_repeats
from latency_ledger.findings.thresholds import (
    CHATTY_CALLS,
    DEFAULT_THRESHOLDS,
    N_PLUS_ONE,
    POOL_WAIT,
    SETUP_KEYWORDS,
    SLOW_STATEMENT,
    Thresholds,
    is_setup_statement,
)

__all__ = [
    "CHATTY_CALLS",
    "DEFAULT_THRESHOLDS",
    "MAX_TARGETS_PER_ENDPOINT",
    "N_PLUS_ONE",
    "OTHER_TARGETS",
    "POOL_WAIT",
    "SETUP_KEYWORDS",
    "SLOW_STATEMENT",
    "FindingsAccumulator",
    "Normalizer",
    "Repeat",
    "Thresholds",
    "batching_saves",
    "detect_repeats",
    "is_setup_statement",
    "margin",
    "shorten",
]
