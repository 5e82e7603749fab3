"""Requests that are long-lived streams -> per (service, endpoint, kind) statistics.

Contract: :class:`StreamTable` is streaming and mergeable like the Aggregator (which
never sees these requests): per (service, endpoint, kind) it keeps how many streams,
their errors and how long each stayed open; ``streams()`` gives the median and the
longest, in a sorted order that does not depend on arrival order.
"""

from __future__ import annotations

from array import array

from latency_ledger.aggregate.ranks import nearest_rank
from latency_ledger.model import Request, StreamStats


class StreamTable:
    """Streams per (service, endpoint, kind): counts, errors and open durations."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, str], tuple[array[int], list[int]]] = {}

    def add(self, request: Request) -> None:
        key = (request.service, request.endpoint, request.stream)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = (array("q"), [0])
        group[0].append(request.wall_ns)
        group[1][0] += request.is_error

    def merge(self, other: StreamTable, rename: dict[tuple[str, str], str]) -> None:
        """Add ``other``'s streams; ``rename`` as in :meth:`Aggregator.merge`."""
        for (service, endpoint, kind), (walls, errors) in other._groups.items():
            key = (service, rename.get((service, endpoint), endpoint), kind)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = (array("q"), [0])
            group[0].extend(walls)
            group[1][0] += errors[0]

    def groups(self) -> list[tuple[tuple[str, str], int]]:
        """Every (service, endpoint) holding streams, and how many."""
        counts: dict[tuple[str, str], int] = {}
        for (service, endpoint, _kind), (walls, _errors) in self._groups.items():
            counts[(service, endpoint)] = counts.get((service, endpoint), 0) + len(walls)
        return list(counts.items())

    def streams(self) -> tuple[StreamStats, ...]:
        out = []
        for (service, endpoint, kind), (walls, errors) in sorted(self._groups.items()):
            ordered = sorted(walls)
            out.append(
                StreamStats(
                    service=service,
                    endpoint=endpoint,
                    kind=kind,
                    count=len(ordered),
                    errors=errors[0],
                    median_ns=ordered[nearest_rank(50, len(ordered)) - 1],
                    max_ns=ordered[-1],
                )
            )
        return tuple(out)
