"""A wait span's tail, delay and tail bound -> what of its booked time is own time.

Contract: pure arithmetic on a wait span's raw ``ledger.*`` attribute values
(``contract.TAIL_NS``, ``DELAY_NS``, ``TAIL_MAX_NS``) and the interval it was booked;
shared by both booking sweeps (``booking.book_spans``, ``flat``) and the collector's
light spans (``collect/light_booking.py``).
"""

from __future__ import annotations

from latency_ledger.ledger.contract import as_int
from latency_ledger.model import AttributeValue


def wait_tail(
    tail: AttributeValue,
    delay: AttributeValue,
    bound: AttributeValue,
    booked_start: int,
    booked_end: int,
    span_end: int,
) -> tuple[int, int, int | None]:
    """``(moved, tail part, slack)`` of a wait span booked ``[booked_start, booked_end)``
    whose attributes give its tail, delay and tail bound (raw values; None: absent).

    ``moved``: the part of its tail and delay inside what it booked, which is own time,
    not the span's category; ``tail part``: the tail's share of that (queueing; the tail
    is the last part); ``slack``: what the bound leaves beyond the tail (>= 0; the
    caller clips it to what the span keeps), or None when the span has no bound (its
    wait was not measured)."""
    queued = moved = tail_part = 0
    if tail is not None or delay is not None:
        queued = max(0, as_int(tail) or 0) if tail is not None else 0
        off_cpu = max(0, as_int(delay) or 0) if delay is not None else 0
        moved = tail_overlap(queued + off_cpu, booked_start, booked_end, span_end)
        tail_part = queued if queued < moved else moved
    if bound is None:
        return moved, tail_part, None
    if booked_end - booked_start - moved <= 0:
        return moved, tail_part, 0
    slack = (as_int(bound) or 0) - queued
    return moved, tail_part, slack if slack > 0 else 0


def tail_overlap(tail_ns: int, booked_start: int, booked_end: int, span_end: int) -> int:
    """How much of a span's tail (its last ``tail_ns``, ending at ``span_end``) lies in
    the interval ``[booked_start, booked_end)`` it was booked."""
    if tail_ns <= 0:
        return 0
    start = span_end - tail_ns
    if start < booked_start:
        start = booked_start
    return booked_end - start if booked_end > start else 0
