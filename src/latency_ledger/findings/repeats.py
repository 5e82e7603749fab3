"""One request's calls -> its repeats: the N+1 and chatty-call step, pure.

Contract: :func:`detect_repeats` takes one :class:`~latency_ledger.model.Request` and
:class:`~latency_ledger.findings.thresholds.Thresholds` and returns the
:class:`Repeat` records (``n_plus_one`` for one normalized statement, ``chatty_calls``
for one outgoing target) that meet them, in no particular order. A repeat's cost is its
calls' ``booked_ns`` (what concurrent calls really held the request up), and what a fix
removes is :func:`batching_saves`: the booked time minus the longest call, since batching
leaves about one call. :func:`group_calls` and :func:`find_repeats` are the two halves, on
calls as rows (:data:`CallRow`), for the accumulator, which normalizes through its own cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter

from latency_ledger.findings.thresholds import CHATTY_CALLS, N_PLUS_ONE, Thresholds
from latency_ledger.model import (
    ROW_BOOKED,
    ROW_END,
    ROW_KIND,
    ROW_START,
    ROW_TARGET,
    Call,
    CallKind,
    CallRow,
    Request,
)
from latency_ledger.sql import normalize_statement

# Every outgoing kind but the request's own client I/O (ASGI receive/send: streaming a
# response body in chunks is not a batching mistake) and database connection checkout.
CHATTY_KINDS = frozenset(
    {CallKind.HTTP, CallKind.RPC, CallKind.CACHE, CallKind.MESSAGING, CallKind.OTHER}
)
# Targets that may carry ids or keys, normalized like statements.
NORMALIZED_KINDS = frozenset({CallKind.CACHE, CallKind.OTHER})

_START = itemgetter(ROW_START)


def call_rows(calls: Iterable[Call]) -> list[CallRow]:
    """``calls`` as rows (:data:`CallRow`), in the same order."""
    return [
        (c.category, c.kind, c.system, c.target, c.start_ns, c.end_ns, c.booked_ns) for c in calls
    ]


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


def group_calls(
    rows: Iterable[CallRow], normalize: Normalizer
) -> tuple[dict[str, list[CallRow]], dict[str, list[CallRow]]]:
    """Statement -> its QUERY calls, and target -> its outgoing calls, of one request.

    HTTP targets arrive as "METHOD host/route" with ids collapsed by classify; cache
    commands and bare span names can carry keys with ids, which the statement
    normalizer turns into ?."""
    queries: dict[str, list[CallRow]] = {}
    outgoing: dict[str, list[CallRow]] = {}
    for row in rows:
        kind = row[ROW_KIND]
        if kind == CallKind.QUERY:
            queries.setdefault(normalize(row[ROW_TARGET]), []).append(row)
        elif kind in CHATTY_KINDS:
            target = normalize(row[ROW_TARGET]) if kind in NORMALIZED_KINDS else row[ROW_TARGET]
            outgoing.setdefault(target, []).append(row)
    return queries, outgoing


def overlapping(rows: list[CallRow]) -> bool:
    """Whether at least two of the calls overlap in time."""
    ordered = sorted(rows, key=_START)
    reach = ordered[0][ROW_END]
    for row in ordered[1:]:
        if row[ROW_START] < reach:
            return True
        reach = max(reach, row[ROW_END])
    return False


def qualifying(
    groups: dict[str, list[CallRow]],
    wall_ns: int,
    min_repeats: int,
    min_ns: int,
    min_fraction: float,
) -> Iterator[tuple[str, list[CallRow], int]]:
    """``(target, calls, booked_ns)`` of each group of ``groups`` that is a repeat: at
    least ``min_repeats`` calls booked at least ``min_ns`` or ``min_fraction`` of the
    request's wall time (the accumulator's lean path; :func:`find_repeats` makes records)."""
    for target, rows in groups.items():
        if len(rows) < min_repeats:
            continue
        booked = sum([row[ROW_BOOKED] for row in rows])
        if booked < min_ns and not (wall_ns > 0 and booked >= min_fraction * wall_ns):
            continue
        yield target, rows, booked


def _qualifying(
    kind: str,
    groups: dict[str, list[CallRow]],
    wall_ns: int,
    min_repeats: int,
    min_ns: int,
    min_fraction: float,
) -> Iterable[Repeat]:
    for target, rows, booked in qualifying(groups, wall_ns, min_repeats, min_ns, min_fraction):
        yield Repeat(
            kind=kind,
            target=target,
            count=len(rows),
            booked_ns=booked,
            duration_ns=sum(row[ROW_END] - row[ROW_START] for row in rows),
            concurrent=overlapping(rows),
            fixable_ns=saves(rows, booked),
        )


def saves(rows: Sequence[CallRow], booked: int) -> int:
    """:func:`batching_saves` of calls as rows whose booked time sums to ``booked``."""
    longest = max([row[ROW_END] - row[ROW_START] for row in rows], default=0)
    return max(0, booked - longest)


def batching_saves(calls: Sequence[Call]) -> int:
    """What batching ``calls`` into one removes from the request: their booked time
    minus the one call that remains (the longest, so the bound is never generous)."""
    return saves(call_rows(calls), sum(c.booked_ns for c in calls))


def find_repeats(
    wall_ns: int,
    thresholds: Thresholds,
    queries: dict[str, list[CallRow]],
    outgoing: dict[str, list[CallRow]],
) -> tuple[Repeat, ...]:
    t = thresholds
    return (
        *_qualifying(
            N_PLUS_ONE,
            queries,
            wall_ns,
            t.n_plus_one_min_repeats,
            t.n_plus_one_min_ns,
            t.n_plus_one_min_fraction,
        ),
        *_qualifying(
            CHATTY_CALLS,
            outgoing,
            wall_ns,
            t.chatty_min_repeats,
            t.chatty_min_ns,
            t.chatty_min_fraction,
        ),
    )


def detect_repeats(request: Request, thresholds: Thresholds) -> tuple[Repeat, ...]:
    """The N+1 and chatty-call repeats in one request that meet ``thresholds``."""
    queries, outgoing = group_calls(call_rows(request.calls), normalize_statement)
    return find_repeats(request.wall_ns, thresholds, queries, outgoing)
