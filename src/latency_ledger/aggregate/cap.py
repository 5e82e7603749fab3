"""The cap on distinct endpoint rows.

Contract: :class:`EndpointCap` keeps the number of (service, endpoint) rows at most
``limit``: past it a new endpoint's requests go to its service's ``(other endpoints)``
row (:data:`OTHER_ENDPOINT`), and what was folded is counted and said in one line.
"""

from __future__ import annotations

from dataclasses import replace

from latency_ledger.model import Request

OTHER_ENDPOINT = "(other endpoints)"
_FOLDED_NAMES = 1_000_000  # distinct folded names counted exactly up to this many


class EndpointCap:
    """At most ``limit`` distinct (service, endpoint) rows: a request of a further new one
    is folded into its service's :data:`OTHER_ENDPOINT` row (hostile or unrouted traffic
    must not grow the analysis and the report without bound). Counts what it folds."""

    __slots__ = ("_folded", "_seen", "limit", "requests_folded")

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._seen: set[tuple[str, str]] = set()
        self._folded: set[tuple[str, str]] = set()
        self.requests_folded = 0

    def fold(self, request: Request) -> Request:
        endpoint = self.fold_name(request.service, request.endpoint)
        return request if endpoint is request.endpoint else replace(request, endpoint=endpoint)

    def fold_name(self, service: str, endpoint: str, requests: int = 1) -> str:
        """The row ``requests`` requests of (service, endpoint) go to."""
        key = (service, endpoint)
        if key in self._seen:
            return endpoint
        if len(self._seen) < self.limit:
            self._seen.add(key)
            return endpoint
        if endpoint != OTHER_ENDPOINT:  # already folded (merging): counted where it was
            self.requests_folded += requests
            if len(self._folded) < _FOLDED_NAMES:
                self._folded.add(key)
        return OTHER_ENDPOINT

    def merge_counts(self, other: EndpointCap) -> None:
        """Add what ``other`` folded (its requests went through its own cap)."""
        self.requests_folded += other.requests_folded
        for key in other._folded:
            if len(self._folded) >= _FOLDED_NAMES:
                break
            self._folded.add(key)

    def problem(self) -> str | None:
        """The one line saying what was folded, or None."""
        if not self.requests_folded:
            return None
        names = len(self._folded)
        more = "+" if names >= _FOLDED_NAMES else ""
        return (
            f"more than {self.limit:,} endpoints: {names:,}{more} further endpoints "
            f"({self.requests_folded:,} requests) are one row {OTHER_ENDPOINT!r} "
            "(raise the limit with --max-endpoints)"
        )
