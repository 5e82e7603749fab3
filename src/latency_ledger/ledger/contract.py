"""The attribute contract between the in-app collector (``collect/``) and the ledger.

Contract: the names of the ``ledger.*`` attributes the collector writes on request and
wait spans (all in ns), the cap on a request's wall time, and how an attribute value is
read as an int or a false flag. Imports nothing of the ledger's; every other ledger
module reads attributes through these names.
"""

from __future__ import annotations

import math

from latency_ledger.model import AttributeValue

# Attribute names of the contract with the in-app collector (collect/), all in ns.
CPU_NS = "ledger.cpu_ns"
QUEUEING_NS = "ledger.queueing_ns"
OVERHEAD_NS = "ledger.overhead_ns"
SPANS_KEPT = "ledger.spans_kept"
KEEP_PROBABILITY = "ledger.keep_probability"
DATABASE_NS = "ledger.database_ns"
NETWORK_NS = "ledger.network_ns"
# all own CPU, interpreter + native: the collector books totals without splitting the
# CPU; a profiled request's ``ledger.profile`` does, in both booking paths alike
INTERPRETER_NS = "ledger.interpreter_ns"
WAITING_NS = "ledger.waiting_ns"
PROFILE = "ledger.profile"
_TOTALS = (DATABASE_NS, NETWORK_NS, INTERPRETER_NS, WAITING_NS)
# On a wait span: the stretch at its end spent waiting for the event loop or the
# interpreter lock after the I/O (collect/tails.py), booked as waiting and queueing.
TAIL_NS = QUEUEING_NS
# On a wait span: the stretch the OS kept its thread from a CPU (just before the tail):
# waiting, not the span's category, and not queueing either.
DELAY_NS = "ledger.unattributed_ns"
# On a wait span: the bound on its tail (collect/tails.py); what of it was not booked as
# tail may still be waiting for Python inside the span's category. A wait span without it
# in a request with CPU measured was not measured at all (its wait is unbounded).
TAIL_MAX_NS = "ledger.queueing_max_ns"
# On a request span: the same bounds summed over its wait spans (the collector writes them
# for every request, kept or not), and the CPU of native libraries' own threads charged
# to it and its bound (collect/native_threads.py).
DATABASE_WAIT_MAX_NS = "ledger.database_wait_max_ns"
NETWORK_WAIT_MAX_NS = "ledger.network_wait_max_ns"
UNBOUNDED_IO_NS = "ledger.unbounded_io_ns"
NATIVE_THREADS_NS = "ledger.native_threads_ns"
NATIVE_THREADS_MAX_NS = "ledger.native_threads_max_ns"
# On a request span: its database statements as the collector counted them, kept or not
# (model.StatementTallies): the count of all of them (always written, 0 included: its
# presence says the request was counted), and parallel arrays, one entry per distinct
# statement (fingerprint 0: the rest, folded), the normalized texts only now and then.
STATEMENT_COUNT = "ledger.statement_count"
STATEMENT_FINGERPRINTS = "ledger.statement.fingerprints"
STATEMENT_CALLS = "ledger.statement.calls"
STATEMENT_BOOKED_NS = "ledger.statement.booked_ns"
STATEMENT_LONGEST_NS = "ledger.statement.longest_ns"
STATEMENT_TEXTS = "ledger.statement.texts"
# Longer "requests" are corrupt timestamps; the cap keeps every part inside the int64
# columns aggregation stores them in (2**62 ns is ~146 years).
MAX_WALL_NS = 2**62


def as_int(value: AttributeValue) -> int | None:
    """An attribute as an int: ints, finite floats and decimal strings; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and 0 < len(value) <= 20:
        digits = value[1:] if value[0] == "-" else value
        if digits.isascii() and digits.isdigit():
            return int(value)
    return None


def _is_false(value: AttributeValue) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "false"
    return value is False
