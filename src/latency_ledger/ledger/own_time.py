"""A request's own time -> its ledger: the CPU split and the estimates.

Contract: pure functions from a request span's attributes and its booked database,
network and own time to a :class:`~latency_ledger.model.Ledger` whose parts add up to
the wall time exactly. Own time is ``app`` when no CPU was measured, else
``interpreter`` + ``native`` + ``waiting`` (queueing within waiting), native split by
the request's profile; the wait bounds and native libraries' threads are the
estimates (:func:`estimates`). Both booking paths end here: from the span tree
(:func:`split_own_time`) and from the collector's totals (:func:`ledger_from_totals`);
sources that book the ledger elsewhere add the estimates with :func:`with_estimates`.
"""

from __future__ import annotations

from dataclasses import replace

from latency_ledger.ledger.contract import (
    CPU_NS,
    DATABASE_NS,
    DATABASE_WAIT_MAX_NS,
    INTERPRETER_NS,
    NATIVE_THREADS_MAX_NS,
    NATIVE_THREADS_NS,
    NETWORK_NS,
    NETWORK_WAIT_MAX_NS,
    PROFILE,
    QUEUEING_NS,
    UNBOUNDED_IO_NS,
    WAITING_NS,
    as_int,
)
from latency_ledger.ledger.records import new_ledger
from latency_ledger.model import Attributes, AttributeValue, Ledger
from latency_ledger.profiles import profile_native_ns


def split_own_time(
    attrs: Attributes,
    database: int,
    network: int,
    own: int,
    tails: int = 0,
    bounds: tuple[int, int, int] = (0, 0, 0),
) -> Ledger:
    """Own time -> interpreter + waiting (CPU measured in-app) or app (not measured).

    ``tails``: the wait spans' tails moved into own time; queueing is at least that.
    ``bounds``: the wait spans' (database, network) waits that may be Python's, and the
    I/O time of spans with no such bound (:func:`book_spans`); kept with CPU measured
    only (traces from other tools measure no tail at all).
    """
    cpu = as_int(attrs.get(CPU_NS))
    if cpu is None:
        return new_ledger(database_ns=database, network_ns=network, app_ns=own)
    return _measured(attrs, database, network, own, cpu, tails, bounds)


def split_measured(own: int, cpu: int, queueing: int) -> tuple[int, int, int]:
    """(interpreter, waiting, queueing) of ``own`` time by a CPU measurement: interpreter
    is the CPU clipped to own time, waiting the rest, queueing clipped to waiting."""
    interpreter = min(max(cpu, 0), own)
    waiting = own - interpreter
    return interpreter, waiting, min(max(queueing, 0), waiting)


def _measured(
    attrs: Attributes,
    database: int,
    network: int,
    own: int,
    cpu: int,
    tails: int = 0,
    bounds: tuple[int, int, int] | None = None,
) -> Ledger:
    """Own time split by a CPU measurement (:func:`split_measured`); the CPU split into
    interpreter and native by the request's profile, if it has one (native clipped to
    the CPU booked). Both booking paths (span tree, ``ledger.*`` totals) end here.
    ``tails``: wait spans' tails moved into own time; queueing is at least that.
    ``bounds``: from the span tree (:func:`book_spans`); None: the request span's totals.

    Native libraries' threads: of the waiting that is not queueing (the request off its
    CPU with nothing instrumented), up to the CPU those threads burned for it is the
    wall time it waited for them, booked ``native``."""
    queueing = max(as_int(attrs.get(QUEUEING_NS)) or 0, tails)
    interpreter, waiting, queueing = split_measured(own, cpu, queueing)
    database_max, network_max, unbounded, threads, threads_max, threads_booked = estimates(
        attrs, database, network, waiting - queueing, bounds
    )
    waiting -= threads_booked
    profiled = profile_native_ns(attrs.get(PROFILE))
    native = native_max = 0
    if profiled is not None:
        booked, upper, seen = profiled
        native = min(booked, interpreter)
        # CPU the profile did not see (worker threads: only the thread that started the
        # profile is sampled) may be native too: the upper bound includes it
        unseen = max(0, interpreter - seen) if seen is not None else 0
        native_max = min(upper + unseen, interpreter)
    return new_ledger(
        database_ns=database,
        network_ns=network,
        interpreter_ns=interpreter - native,
        waiting_ns=waiting,
        queueing_ns=queueing,
        cpu_measured=True,
        native_ns=native + threads_booked,
        native_measured=profiled is not None,
        native_max_ns=native_max,
        database_wait_max_ns=database_max,
        network_wait_max_ns=network_max,
        unbounded_io_ns=unbounded,
        native_threads_ns=threads,
        native_threads_max_ns=threads_max,
        native_threads_booked_ns=threads_booked,
    )


# A request span's attributes that :func:`estimates` reads.
ESTIMATE_KEYS = (
    DATABASE_WAIT_MAX_NS,
    NETWORK_WAIT_MAX_NS,
    UNBOUNDED_IO_NS,
    NATIVE_THREADS_NS,
    NATIVE_THREADS_MAX_NS,
)


def estimates(
    attrs: Attributes,
    database: int,
    network: int,
    idle: int,
    bounds: tuple[int, int, int] | None = None,
) -> tuple[int, int, int, int, int, int]:
    """(database wait bound, network wait bound, unbounded I/O, native threads' CPU, its
    bound, the part of ``idle`` waited for them) of a request with CPU measured, each
    bound clipped to what it bounds; ``idle``: its waiting that is not queueing;
    ``bounds``: from its span tree (:func:`book_spans`), else the request span's totals."""
    if bounds is None:
        bounds = (
            _nonnegative(attrs.get(DATABASE_WAIT_MAX_NS)),
            _nonnegative(attrs.get(NETWORK_WAIT_MAX_NS)),
            _nonnegative(attrs.get(UNBOUNDED_IO_NS)),
        )
    threads_max = _nonnegative(attrs.get(NATIVE_THREADS_MAX_NS))
    threads = min(_nonnegative(attrs.get(NATIVE_THREADS_NS)), threads_max)
    return (
        min(bounds[0], database),
        min(bounds[1], network),
        min(bounds[2], database + network),
        threads,
        threads_max,
        max(0, min(threads, idle)),
    )


def with_estimates(
    ledger: Ledger, attrs: Attributes, bounds: tuple[int, int, int] | None = None
) -> Ledger:
    """A ledger booked elsewhere (ClickHouse's SQL) from a request span's totals, or from
    its span tree with the tree's ``bounds`` (:func:`book_spans`), with :func:`estimates`
    applied as :func:`_measured` applies them."""
    if not ledger.cpu_measured or (
        bounds is None and not any(key in attrs for key in ESTIMATE_KEYS)
    ):
        return ledger
    database_max, network_max, unbounded, threads, threads_max, booked = estimates(
        attrs,
        ledger.database_ns,
        ledger.network_ns,
        ledger.waiting_ns - ledger.queueing_ns,
        bounds,
    )
    return replace(
        ledger,
        waiting_ns=ledger.waiting_ns - booked,
        native_ns=ledger.native_ns + booked,
        database_wait_max_ns=database_max,
        network_wait_max_ns=network_max,
        unbounded_io_ns=unbounded,
        native_threads_ns=threads,
        native_threads_max_ns=threads_max,
        native_threads_booked_ns=booked,
    )


def _nonnegative(value: AttributeValue) -> int:
    found = as_int(value) if value is not None else None
    return found if found is not None and found > 0 else 0


def ledger_from_totals(attrs: Attributes, wall: int) -> Ledger:
    """The collector's in-app totals, clipped and repaired to add up to ``wall``.

    Parts are taken in order (database, network, interpreter) each clipped to what is
    left; waiting takes the rest, so a rounding gap between the collector's clock and
    the span's never breaks the sum.
    """
    database = min(max(as_int(attrs.get(DATABASE_NS)) or 0, 0), wall)
    network = min(max(as_int(attrs.get(NETWORK_NS)) or 0, 0), wall - database)
    own = wall - database - network
    interpreter = as_int(attrs.get(INTERPRETER_NS))
    if interpreter is None:
        interpreter = as_int(attrs.get(CPU_NS))
    if interpreter is None:
        waiting_given = as_int(attrs.get(WAITING_NS))
        if waiting_given is None:
            return Ledger(database_ns=database, network_ns=network, app_ns=own)
        interpreter = own - min(max(waiting_given, 0), own)
    return _measured(attrs, database, network, own, interpreter)
