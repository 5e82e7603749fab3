"""One group's requests as compact columns, folded into a sketch past a size.

Contract: :class:`_Columns` holds a (service, endpoint) group's requests as one
``array('q')`` per number (a few dozen bytes a request, never the Request object) up to
``sketch.EXACT_LIMIT`` requests, then as a ``sketch.LedgerSketch`` whose size does not
grow. ``extend`` merges another group; whether the result is sketched depends only on
its size, not on the order the rows came in.
"""

from __future__ import annotations

from array import array

from latency_ledger.sketch import COLUMNS, EXACT_LIMIT, LedgerSketch


class _Columns:
    """One group's requests, one array per number."""

    __slots__ = (
        "app",
        "database",
        "database_wait_max",
        "errors",
        "from_totals",
        "interpreter",
        "measured",
        "native",
        "native_max",
        "native_seen",
        "network",
        "network_wait_max",
        "queueing",
        "sketch",
        "threads",
        "threads_booked",
        "threads_max",
        "unbounded",
        "waiting",
        "wall",
    )

    _EXTENDED = (*COLUMNS, "native_seen")

    def __init__(self) -> None:
        self.wall = array("q")
        self.database = array("q")
        self.network = array("q")
        self.interpreter = array("q")
        self.waiting = array("q")
        self.app = array("q")
        self.queueing = array("q")
        self.measured = array("b")
        self.native = array("q")
        self.native_max = array("q")  # the profile's upper native figure, when measured
        self.native_seen = array("b")  # 1: native measured by the request's own profile
        # bounds, not parts (model.Ledger): the tails' and native libraries' threads'
        self.database_wait_max = array("q")
        self.network_wait_max = array("q")
        self.unbounded = array("q")
        self.threads = array("q")
        self.threads_max = array("q")
        self.threads_booked = array("q")  # the part of ``native`` waited for those threads
        self.errors = 0
        self.from_totals = 0
        self.sketch: LedgerSketch | None = None  # past EXACT_LIMIT requests (sketch.py)

    def count(self) -> int:
        return len(self.wall) if self.sketch is None else self.sketch.count

    def total_wall(self) -> int:
        return sum(self.wall) if self.sketch is None else self.sketch.total("wall")

    def fold(self) -> LedgerSketch:
        """Move the exact rows into the sketch (made if need be); return it."""
        sketch = self.sketch
        if sketch is None:
            sketch = self.sketch = LedgerSketch()
        rows = zip(*(getattr(self, name) for name in COLUMNS), strict=True)
        for values, seen in zip(rows, self.native_seen, strict=True):
            sketch.add(values, seen)
        for name in self._EXTENDED:
            setattr(self, name, array(getattr(self, name).typecode))
        return sketch

    def extend(self, other: _Columns) -> None:
        exact = self.sketch is None and other.sketch is None
        if exact and len(self.wall) + len(other.wall) <= EXACT_LIMIT:
            for name in self._EXTENDED:
                getattr(self, name).extend(getattr(other, name))
            self.errors += other.errors
            self.from_totals += other.from_totals
            return
        sketch = self.fold()
        if other.sketch is not None:
            sketch.merge(other.sketch)
        rows = zip(*(getattr(other, name) for name in COLUMNS), strict=True)
        for values, seen in zip(rows, other.native_seen, strict=True):
            sketch.add(values, seen)
        self.errors += other.errors
        self.from_totals += other.from_totals
