"""One request's calls -> its repeats: the N+1 and chatty-call step, pure.

Contract: :func:`detect_repeats` takes one :class:`~latency_ledger.model.Request` and
:class:`~latency_ledger.findings.thresholds.Thresholds` and returns the
:class:`Repeat` records (``n_plus_one`` for one normalized statement, ``chatty_calls``
for one outgoing target) that meet them, in no particular order. A repeat's cost is its
calls' ``booked_ns`` (what concurrent calls really held the request up), and what a fix
removes is :func:`batching_saves`: the booked time minus the longest call, since batching
leaves about one call. :func:`group_calls` and :func:`find_repeats` are the two halves,
for the accumulator, which normalizes through its own cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from latency_ledger.findings.thresholds import CHATTY_CALLS, N_PLUS_ONE, Thresholds
from latency_ledger.model import Call, CallKind, Request
from latency_ledger.sql import normalize_statement

# Every outgoing kind but the request's own client I/O (ASGI receive/send: streaming a
# response body in chunks is not a batching mistake) and database connection checkout.
CHATTY_KINDS = frozenset(
    {CallKind.HTTP, CallKind.RPC, CallKind.CACHE, CallKind.MESSAGING, CallKind.OTHER}
)
# Targets that may carry ids or keys, normalized like statements.
NORMALIZED_KINDS = frozenset({CallKind.CACHE, CallKind.OTHER})
_START = attrgetter("start_ns")


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
    if call.kind in NORMALIZED_KINDS:
        return normalize(call.target)
    return call.target


def group_calls(
    request: Request, normalize: Normalizer
) -> tuple[dict[str, list[Call]], dict[str, list[Call]]]:
    """Statement -> its QUERY calls, and target -> its outgoing calls, in this request."""
    queries: dict[str, list[Call]] = {}
    outgoing: dict[str, list[Call]] = {}
    for call in request.calls:
        if call.kind == CallKind.QUERY:
            queries.setdefault(normalize(call.target), []).append(call)
        elif call.kind in CHATTY_KINDS:
            outgoing.setdefault(_call_target(call, normalize), []).append(call)
    return queries, outgoing


def overlapping(calls: list[Call]) -> bool:
    """Whether at least two of ``calls`` overlap in time."""
    ordered = sorted(calls, key=_START)
    reach = ordered[0].end_ns
    for call in ordered[1:]:
        if call.start_ns < reach:
            return True
        reach = max(reach, call.end_ns)
    return False


def qualifying(
    groups: dict[str, list[Call]],
    wall_ns: int,
    min_repeats: int,
    min_ns: int,
    min_fraction: float,
) -> Iterator[tuple[str, list[Call], int]]:
    """``(target, calls, booked_ns)`` of each group of ``groups`` that is a repeat: at
    least ``min_repeats`` calls booked at least ``min_ns`` or ``min_fraction`` of the
    request's wall time (the accumulator's lean path; :func:`find_repeats` makes records)."""
    for target, calls in groups.items():
        if len(calls) < min_repeats:
            continue
        booked = sum([c.booked_ns for c in calls])
        if booked < min_ns and not (wall_ns > 0 and booked >= min_fraction * wall_ns):
            continue
        yield target, calls, booked


def _qualifying(
    kind: str,
    groups: dict[str, list[Call]],
    wall_ns: int,
    min_repeats: int,
    min_ns: int,
    min_fraction: float,
) -> Iterable[Repeat]:
    for target, calls, booked in qualifying(groups, wall_ns, min_repeats, min_ns, min_fraction):
        yield Repeat(
            kind=kind,
            target=target,
            count=len(calls),
            booked_ns=booked,
            duration_ns=sum(c.duration_ns for c in calls),
            concurrent=overlapping(calls),
            fixable_ns=batching_saves(calls, booked),
        )


def batching_saves(calls: Sequence[Call], booked: int | None = None) -> int:
    """What batching ``calls`` into one removes from the request: their booked time
    (``booked``: already summed) minus the one call that remains (the longest, so the
    bound is never generous)."""
    if booked is None:
        booked = sum(c.booked_ns for c in calls)
    longest = max([c.end_ns - c.start_ns for c in calls], default=0)
    return max(0, booked - longest)


def find_repeats(
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
    queries, outgoing = group_calls(request, normalize_statement)
    return find_repeats(request, thresholds, queries, outgoing)
