"""What a reader accepts: the limits that keep hostile input bounded, and span times.

Contract: :class:`ReadLimits` holds the configurable limits (line length, decompressed
bytes per file, longest plausible span); :class:`TimeCheck` is one file's judge of span
timestamps. Every reader asks it once per span, so nothing downstream sees a time that
could overflow its int64 columns or a span that cannot be a request's part. Nothing
here raises: a problem comes back as ``(reason, text)`` for the caller to note.
"""

from __future__ import annotations

from dataclasses import dataclass

# OTLP times are fixed64, but every column downstream is int64 (array('q')); past 2^63 ns
# (the year 2262) a value is not a clock reading.
MAX_TIME_NS = (1 << 63) - 1
# From 2000-01-01 on, a time is a wall-clock reading (exporters write Unix epoch ns).
WALL_CLOCK_NS = 946_684_800 * 1_000_000_000
_DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLimits:
    """Limits per input; each skip they cause is counted and named with its place."""

    # A Collector line is one batch: a few MiB at most. A longer line is skipped unread.
    max_line_bytes: int = 64 << 20
    # Bytes a compressed file may expand to; past it the rest is not read (zip bombs).
    max_file_bytes: int = 4 << 30
    # The longest span accepted: a span starting at 1 ns would read as a 57-year request.
    max_span_ns: int = _DAY_NS


class TimeCheck:
    """One file's span-time judge: range, order, length, and agreement with the file.

    Plausibility against the rest of the file: once a span with a wall-clock start has
    been accepted, a span starting decades earlier (a missing or zeroed clock) is skipped.
    Readers test ``start < floor or end < start or end - start > max_span_ns or end >
    MAX_TIME_NS`` inline (the hot loop) and call :meth:`problem` only when it holds, and
    :meth:`accepted` for a start at or past ``WALL_CLOCK_NS`` while ``floor`` is below it.
    """

    __slots__ = ("floor", "max_span_ns")

    def __init__(self, limits: ReadLimits) -> None:
        self.floor = 1
        self.max_span_ns = limits.max_span_ns

    def accepted(self, start_ns: int) -> None:
        if start_ns >= WALL_CLOCK_NS:
            self.floor = WALL_CLOCK_NS

    def problem(self, start_ns: int, end_ns: int) -> tuple[str, str] | None:
        """``(reason, text)`` if these times are unusable, else None; also notes a good start."""
        if not end_ns:
            return "span_without_end_time", "has no end time"
        if not start_ns:
            return "span_without_start_time", "has no start time"
        if end_ns > MAX_TIME_NS or start_ns < 0:
            return "time_out_of_range", f"has a time past the year 2262 ({end_ns} ns)"
        if end_ns < start_ns:
            return "end_before_start", "ends before it starts"
        if end_ns - start_ns > self.max_span_ns:
            days = (end_ns - start_ns) / _DAY_NS
            return "implausible_duration", f"lasts {days:,.1f} days (limit max_span_ns)"
        if start_ns < self.floor:
            return (
                "implausible_time",
                f"starts at {start_ns} ns, before 2000 while the file's spans are wall-clock times",
            )
        self.accepted(start_ns)
        return None
