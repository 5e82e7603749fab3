"""``--since``, ``--until``, ``--service``: which booked requests a report covers.

Contract: :class:`RequestFilter` keeps a request when it started in ``[since, until)``
and its service is one of ``services`` (all when empty). It is applied to booked
requests, so a request is always booked from its whole trace, whatever the filter;
a ClickHouse source also pushes it into its query (``clickhouse.read``) to fetch only
the traces that can hold such a request. :func:`parse_time` reads the options' times.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from latency_ledger.errors import ConfigError
from latency_ledger.model import Request

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNIT_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFilter:
    since_ns: int | None = None
    until_ns: int | None = None
    services: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return self.since_ns is not None or self.until_ns is not None or bool(self.services)

    def keeps(self, request: Request) -> bool:
        if self.since_ns is not None and request.start_ns < self.since_ns:
            return False
        if self.until_ns is not None and request.start_ns >= self.until_ns:
            return False
        return not self.services or request.service in self.services


def parse_time(text: str, *, option: str, now_ns: int | None = None) -> int:
    """``2026-12-07``, ``2026-12-07T10:00[:00][Z|+01:00]`` (UTC when no offset) or a
    duration ago (``90s``, ``15m``, ``2h``, ``7d``) -> Unix ns. ConfigError if neither."""
    stripped = text.strip()
    ago = _AGO.fullmatch(stripped)
    if ago:
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(float(ago.group(1)) * _UNIT_NS[ago.group(2)])
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected an ISO time (2026-12-07T10:00Z) or a duration ago "
            "(15m, 2h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
