"""The streaming per-endpoint accumulator.

Contract: :class:`Aggregator` (the aggregate package's docstring): ``add`` keeps each
request as one row of its (service, endpoint) group's columns (``columns``); ``merge``
adds another accumulator's groups; ``endpoints()`` and ``overall()`` are computed on
demand (``native``, ``summary``), do not change the state and do not depend on the order
requests were added in.
"""

from __future__ import annotations

from latency_ledger.aggregate.columns import _Columns
from latency_ledger.aggregate.native import _merge_bounds, _NativeBound, estimate_native
from latency_ledger.aggregate.summary import summarize
from latency_ledger.model import EndpointStats, Request
from latency_ledger.sketch import EXACT_LIMIT

ALL = "*"


class Aggregator:
    """Streaming per-endpoint accumulator; see the module docstring."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], _Columns] = {}

    def add(self, request: Request) -> None:
        key = (request.service, request.endpoint)
        columns = self._groups.get(key)
        if columns is None:
            columns = self._groups[key] = _Columns()
        ledger = request.ledger
        if columns.sketch is not None:
            columns.sketch.add(
                (
                    request.wall_ns,
                    ledger.database_ns,
                    ledger.network_ns,
                    ledger.interpreter_ns,
                    ledger.waiting_ns,
                    ledger.app_ns,
                    ledger.queueing_ns,
                    1 if ledger.cpu_measured else 0,
                    ledger.native_ns,
                    ledger.native_max_ns if ledger.native_measured else 0,
                    ledger.database_wait_max_ns,
                    ledger.network_wait_max_ns,
                    ledger.unbounded_io_ns,
                    ledger.native_threads_ns,
                    ledger.native_threads_max_ns,
                    ledger.native_threads_booked_ns,
                ),
                1 if ledger.native_measured else 0,
            )
            columns.errors += request.is_error
            columns.from_totals += request.from_totals
            return
        columns.wall.append(request.wall_ns)
        columns.database.append(ledger.database_ns)
        columns.network.append(ledger.network_ns)
        columns.interpreter.append(ledger.interpreter_ns)
        columns.waiting.append(ledger.waiting_ns)
        columns.app.append(ledger.app_ns)
        columns.queueing.append(ledger.queueing_ns)
        columns.measured.append(1 if ledger.cpu_measured else 0)
        columns.native.append(ledger.native_ns)
        columns.native_max.append(ledger.native_max_ns if ledger.native_measured else 0)
        columns.native_seen.append(1 if ledger.native_measured else 0)
        columns.database_wait_max.append(ledger.database_wait_max_ns)
        columns.network_wait_max.append(ledger.network_wait_max_ns)
        columns.unbounded.append(ledger.unbounded_io_ns)
        columns.threads.append(ledger.native_threads_ns)
        columns.threads_max.append(ledger.native_threads_max_ns)
        columns.threads_booked.append(ledger.native_threads_booked_ns)
        columns.errors += request.is_error
        columns.from_totals += request.from_totals
        if len(columns.wall) > EXACT_LIMIT:
            columns.fold()

    def groups(self) -> list[tuple[tuple[str, str], int]]:
        """Every (service, endpoint) and its number of requests."""
        return [(key, columns.count()) for key, columns in self._groups.items()]

    def merge(self, other: Aggregator, rename: dict[tuple[str, str], str]) -> None:
        """Add ``other``'s requests; ``rename`` gives the endpoint each of its groups
        goes to here (row caps applied)."""
        for (service, endpoint), columns in other._groups.items():
            key = (service, rename.get((service, endpoint), endpoint))
            into = self._groups.get(key)
            if into is None:
                into = self._groups[key] = _Columns()
            into.extend(columns)

    def endpoints(self) -> tuple[EndpointStats, ...]:
        """One row per (service, endpoint), by total time (count * mean) descending."""
        rows = [
            (columns.total_wall(), service, endpoint, columns)
            for (service, endpoint), columns in self._groups.items()
        ]
        rows.sort(key=lambda row: (-row[0], row[1], row[2]))
        return tuple(
            summarize(service, endpoint, *estimate_native(columns))
            for _, service, endpoint, columns in rows
        )

    def overall(self) -> EndpointStats:
        """Every request together, as service ``"*"`` and endpoint ``"*"``; each request's
        native split estimated within its own endpoint."""
        merged = _Columns()
        bounds: list[_NativeBound] = []
        for columns in self._groups.values():
            estimated, bound = estimate_native(columns)
            merged.extend(estimated)
            if bound is not None:
                bounds.append(bound)
        return summarize(ALL, ALL, merged, _merge_bounds(bounds) if bounds else None)
