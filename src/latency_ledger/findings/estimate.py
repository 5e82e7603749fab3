"""Weighted sums and the estimates made from them: what kept trees say about all requests.

Contract: a kept request stands for ``w = 1 / keep_probability`` requests. :class:`Tally`
sums one finding's count and cost over the requests where it occurred, with those weights
and the ``w * (w - 1)`` terms its variance needs; :class:`Aux` holds an auxiliary total
known for every request (database or network time from the ``ledger.*`` totals);
:class:`Base` turns a tally into a cost per request (a ratio estimate on the auxiliary
total where it is known, else Hajek's weighted mean), :func:`margin` into the 95%
half-width of that cost, relative to it (0.0 when every tree was certain to be kept), and
:func:`percentiles` gives the weighted nearest-rank p50 and p99 of call durations.
Sums merge with a scale (one endpoint's kept trees scaled to its request count). Pure
arithmetic: imports nothing of ours.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass


@dataclass(slots=True)
class Tally:
    """A finding in the making: summed over the requests where it occurred.

    ``requests``/``count``/``booked_ns`` are as kept; the ``w_*`` sums weight each request
    by ``w = 1 / keep_probability`` (how many requests its tree stands for) and the
    ``v_*`` sums by ``w * (w - 1)``, what the estimate's variance needs (zero for a tree
    that was certain to be kept); ``v_cross`` pairs the cost with the request's
    auxiliary total (its database or network time, see :class:`Base`)."""

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

    def merge(self, other: Tally, scale: float = 1.0) -> None:
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
        self.requests += 1
        self.count += count
        self.booked_ns += booked_ns
        self.concurrent = self.concurrent or concurrent
        self.w += weight
        self.w_count += weight * count
        self.w_booked += weight * booked_ns
        self.w_fixable += weight * (booked_ns if fixable_ns is None else fixable_ns)
        variance = weight * (weight - 1.0)
        if variance:  # 0 for a tree kept for certain (most): adding +0.0 changes nothing
            self.v_booked += variance * booked_ns
            self.v_booked2 += variance * booked_ns * booked_ns
            self.v_cross += variance * booked_ns * aux_ns


@dataclass(slots=True)
class Aux:
    """An auxiliary total known for every request, kept or not (``ledger.*`` totals): the
    database or the network part. ``total_ns`` over all requests; ``w_ns``/``v_ns2``
    over the kept ones, weighted as in :class:`Tally`."""

    total_ns: int = 0
    w_ns: float = 0.0
    v_ns2: float = 0.0

    def merge(self, other: Aux, scale: float = 1.0) -> None:
        self.total_ns += other.total_ns  # known, not estimated: never scaled
        self.w_ns += other.w_ns * scale
        self.v_ns2 += other.v_ns2 * scale * scale


@dataclass(frozen=True, slots=True, kw_only=True)
class Base:
    """The requests a finding's figures are of: the kept trees' summed weight and
    variance term, every request's count, and the auxiliary total the cost is a share of
    (database time for statements and pool waits, network time for outgoing calls)."""

    weight: float
    variance: float
    requests: int
    aux: Aux

    def ratio(self, tally: Tally) -> float | None:
        """The cost as a share of the auxiliary total, when that is known (else None)."""
        if self.aux.w_ns <= 0 or self.aux.total_ns <= 0 or self.requests <= 0:
            return None
        return tally.w_booked / self.aux.w_ns

    def cost_per_request(self, tally: Tally) -> float:
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


def percentiles(values: array[int], weights: array[float]) -> tuple[int, int]:
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
    """:func:`percentiles` when every weight is 1: the cumulative weight after ``i``
    values is ``i`` exactly, so the value reached is at an index, not found by a walk."""
    ordered = sorted(values)
    count = len(ordered)
    out = []
    for q in (0.50, 0.99):
        reach = q * count - 1e-9 * count  # the walk's test: cumulative >= reach
        index = max(1, math.ceil(reach)) - 1
        out.append(ordered[index] if index < count else ordered[-1])
    return out[0], out[1]


def margin(tally: Tally, base: Base) -> float:
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
