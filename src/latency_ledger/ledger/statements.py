"""A request span's statement tallies (``ledger.statement_*``) -> its StatementTallies.

Contract: :func:`read_tallies` reads what the in-app collector counted of a request's
database statements (``contract.STATEMENT_COUNT`` and the parallel
``ledger.statement.*`` arrays, see :class:`~latency_ledger.model.StatementTallies`) from
its SERVER span's attributes, or None when the span carries none or they do not hold
together (trace content is untrusted: arrays of different lengths, negative or non-int
values, calls that do not add up to the count); then the findings estimate from the
kept trees as for traces from other tools. Pure.
"""

from __future__ import annotations

from latency_ledger.ledger.contract import (
    STATEMENT_BOOKED_NS,
    STATEMENT_CALLS,
    STATEMENT_COUNT,
    STATEMENT_FINGERPRINTS,
    STATEMENT_LONGEST_NS,
    STATEMENT_TEXTS,
    as_int,
)
from latency_ledger.model import Attributes, AttributeValue, StatementTallies

_NONE = StatementTallies(count=0)  # the common request that ran no statement, shared
MAX_STATEMENTS = 1024  # entries per request read; a collector writes far fewer


def read_tallies(attrs: Attributes) -> StatementTallies | None:
    """The request's statement tallies from its span's attributes; None if absent or
    inconsistent (module docstring)."""
    count = as_int(attrs.get(STATEMENT_COUNT))
    if count is None or count < 0:
        return None
    if count == 0:
        return _NONE if STATEMENT_FINGERPRINTS not in attrs else None
    fingerprints = _ints(attrs.get(STATEMENT_FINGERPRINTS))
    calls = _ints(attrs.get(STATEMENT_CALLS))
    booked = _ints(attrs.get(STATEMENT_BOOKED_NS))
    longest = _ints(attrs.get(STATEMENT_LONGEST_NS))
    if fingerprints is None or calls is None or booked is None or longest is None:
        return None
    size = len(fingerprints)
    if not 0 < size <= MAX_STATEMENTS or not len(calls) == len(booked) == len(longest) == size:
        return None
    if sum(calls) != count or min(calls) <= 0 or min(booked) < 0 or min(longest) < 0:
        return None
    if len(set(fingerprints)) != size or min(fingerprints) < 0:
        return None  # one statement twice would be counted twice
    texts = attrs.get(STATEMENT_TEXTS)
    if not (
        isinstance(texts, tuple)
        and len(texts) == size
        and all(isinstance(text, str) for text in texts)
    ):
        texts = ()
    return StatementTallies(
        count=count,
        fingerprints=fingerprints,
        calls=calls,
        booked_ns=booked,
        longest_ns=longest,
        texts=texts,  # type: ignore[arg-type]
    )


def _ints(value: AttributeValue) -> tuple[int, ...] | None:
    if not isinstance(value, tuple) or not value:
        return None
    out = tuple([as_int(item) for item in value])
    return None if None in out else out  # type: ignore[return-value]
