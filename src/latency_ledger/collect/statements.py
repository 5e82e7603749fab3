"""A request's database statements, counted for every request: its ``ledger.statement.*``.

Contract: :class:`StatementCounter` turns the tallies the collector gathered while
booking a request (raw statement text -> ``[calls, booked ns, longest call ns]``: filled
by ``light_booking.light_waits``, or by :func:`tally_calls` from the offline ledger's
calls) into what its SERVER span records (:class:`~latency_ledger.model.StatementTallies`
read back by ``ledger.statements``): the statement count, and per distinct statement,
keyed by the fingerprint of its normalized text (``sql.statement_fingerprint``), its
calls, booked time and longest call, at most :data:`TOP` entries (the most booked time;
the rest folded into fingerprint 0). A text is normalized and fingerprinted once, the
first time it is seen (then cached, as many as :data:`MAX_TEXTS`), never per statement.
The normalized text itself is written beside its fingerprint the first time this
process counts it and again every :data:`ANNOUNCE_EVERY` requests (a rotated-away file
must not take the only copy with it); kept trees give the analyzer the rest.
Not thread-safe beyond the interpreter's own: a lost update under a thread switch
writes a text once more or once less.

Why: N+1 and slow-statement counts and costs then hold for every request exactly, not
for the ~1% of trees kept at random and the slow ones (issue 9).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from latency_ledger.model import CallKind
from latency_ledger.sql import normalize_statement, statement_fingerprint

TOP = 16  # statements written per request; the rest are folded into fingerprint 0
MAX_TEXTS = 4096  # raw statement text -> (fingerprint, normalized) cached
ANNOUNCE_EVERY = 100_000  # requests between two writes of the same statement's text
FOLDED = 0
_QUERY = CallKind.QUERY

# (count, fingerprints, calls, booked ns, longest ns, texts: () when none is written)
Recorded = tuple[
    int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[str, ...]
]
NONE: Recorded = (0, (), (), (), (), ())


def tally_calls(calls: Iterable[Any], tallies: dict[str, list[int]]) -> None:
    """``tallies`` from the offline ledger's booked calls (``model.Call``): the requests
    whose spans ``light_waits`` does not book (nested, overlapping or SDK spans)."""
    for call in calls:
        if call.kind is not _QUERY:
            continue
        length = call.end_ns - call.start_ns
        tally = tallies.get(call.target)
        if tally is None:
            tallies[call.target] = [1, call.booked_ns, length]
        else:
            tally[0] += 1
            tally[1] += call.booked_ns
            if length > tally[2]:
                tally[2] = length


class StatementCounter:
    """Raw statement text -> fingerprint, and which texts were written lately (module
    docstring); :meth:`record` is called once per request."""

    __slots__ = ("announced", "known", "requests", "shapes")

    def __init__(self) -> None:
        self.known: dict[str, tuple[int, str]] = {}
        self.announced: set[int] = set()
        self.requests = 0
        # a request's raw texts, in the order it ran them -> their fingerprints, for the
        # common request: the same statements as many before it, each its own statement,
        # at most TOP, every text written already; then recording is a few C calls
        self.shapes: dict[tuple[str, ...], tuple[int, ...]] = {}

    def _learn(self, raw: str) -> tuple[int, str]:
        normalized = normalize_statement(raw)
        found = (statement_fingerprint(normalized), normalized)
        known = self.known
        if len(known) >= MAX_TEXTS:  # raw texts with literals inlined are unbounded
            known.clear()
        known[raw] = found
        return found

    def record(self, tallies: dict[str, list[int]]) -> Recorded:
        """What the request's SERVER span records of ``tallies`` (module docstring);
        ``tallies`` is the request's own and is used up (its lists may be changed)."""
        requests = self.requests = self.requests + 1
        if requests % ANNOUNCE_EVERY == 0:
            self.announced.clear()
            self.shapes.clear()
        if not tallies:
            return NONE
        shape = tuple(tallies)
        fingerprints = self.shapes.get(shape)
        if fingerprints is not None:
            calls, booked, longest = zip(*tallies.values(), strict=True)
            return sum(calls), fingerprints, calls, booked, longest, ()
        known = self.known
        by_print: dict[int, list[int]] = {}
        texts: dict[int, str] = {}
        for raw, tally in tallies.items():
            fingerprint, normalized = known.get(raw) or self._learn(raw)
            entry = by_print.get(fingerprint)
            if entry is None:
                by_print[fingerprint] = tally  # the request's own list, not copied
                texts[fingerprint] = normalized
            else:  # one statement written with different literals
                entry[0] += tally[0]
                entry[1] += tally[1]
                if tally[2] > entry[2]:
                    entry[2] = tally[2]
        if len(by_print) > TOP:
            by_print = _fold(by_print)
        fingerprints = tuple(by_print)
        calls, booked, longest = zip(*by_print.values(), strict=True)
        announced = self.announced
        new = [fp for fp in fingerprints if fp not in announced and fp != FOLDED]
        if new:
            if len(announced) >= MAX_TEXTS:
                announced.clear()
            announced.update(new)
        elif len(by_print) == len(tallies):  # nothing folded or merged: the common shape
            shapes = self.shapes
            if len(shapes) >= MAX_TEXTS:
                shapes.clear()
            shapes[shape] = fingerprints
        return (
            sum(calls),
            fingerprints,
            calls,
            booked,
            longest,
            tuple([texts[fp] if fp in new else "" for fp in fingerprints]) if new else (),
        )


def _fold(by_print: dict[int, list[int]]) -> dict[int, list[int]]:
    """The ``TOP - 1`` statements with the most booked time, and the rest as one entry
    under fingerprint 0 (which ``statement_fingerprint`` never gives)."""
    ranked = sorted(by_print.items(), key=lambda item: -item[1][1])
    out = dict(ranked[: TOP - 1])
    rest = [0, 0, 0]
    for _, (calls, booked, longest) in ranked[TOP - 1 :]:
        rest[0] += calls
        rest[1] += booked
        if longest > rest[2]:
            rest[2] = longest
    out[FOLDED] = rest
    return out
