"""What the readers saw: counters filled while reading, and the one way to note a problem.

Contract: every unit of input the readers skip is counted once under a reason in
``ReadStats.skipped`` and described by one line ``"path:place: problem"``; only the first
``MAX_PROBLEMS`` lines are kept, the counts are always complete.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

MAX_PROBLEMS = 100
_CLIP = 80


@dataclass(slots=True)
class KeptNotes:
    """What a worker other than the first noted while reading lines it alone counts
    (``read.fast``): the first worker notes everything else."""

    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    count: int = 0
    problems: list[tuple[tuple[int, int, int, int], str]] = field(default_factory=list)


@dataclass(slots=True)
class ReadStats:
    """Mutable counters, filled while :func:`latency_ledger.read.read_traces` runs."""

    files: int = 0  # files opened successfully
    spans: int = 0  # spans accepted
    traces: int = 0  # Trace objects yielded
    bytes_read: int = 0  # input bytes consumed (compressed size for compressed files)
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)  # the first MAX_PROBLEMS lines
    problem_count: int = 0  # every problem noted, kept in ``problems`` or not
    max_in_flight: int = 0  # most traces buffered at once (the memory bound, for tests)
    fallback_units: int = 0  # JSON lines the fast reader left to the reference path
    regrouped: bool = False  # not in trace order: read again, grouped through spill files
    # where each of ``problems`` was noted, (file, line, phase, seq): see read.fast
    places: list[tuple[int, int, int, int]] = field(default_factory=list)
    kept: KeptNotes = field(default_factory=KeptNotes)
    ranges: int = 0  # byte ranges read by workers of their own (split.py); 0: not so
    booked_in_database: int = 0  # requests whose ledger ClickHouse computed (clickhouse/)


def note(stats: ReadStats, reason: str, message: str, count: int = 1) -> None:
    """Count ``count`` skipped units under ``reason``; keep the message if there is room."""
    stats.skipped[reason] += count
    stats.problem_count += 1
    if len(stats.problems) < MAX_PROBLEMS:
        stats.problems.append(message)


def clip(text: object) -> str:
    """Quote attacker-controlled text for a one-line message: repr, bounded length."""
    s = str(text)
    if len(s) > _CLIP:
        s = s[:_CLIP] + "..."
    return repr(s)


def show_path(path: object) -> str:
    """A path for a one-line message; quoted only if it holds control characters."""
    s = str(path)
    return s if s.isprintable() else repr(s)
