"""The collector's optional compiled clocks: ``latency-ledger-speedups`` when installed.

Contract: :data:`SPEEDUPS` is the ``latency_ledger_speedups`` module (``plugins/speedups``,
a C extension) when it imports, was released with this package (the same version: the
C code reads this package's classes' slots at their offsets, so another release's
could misread them) and ``LATENCY_LEDGER_PURE_PYTHON`` is not set to a true value, else
None. Its ``Activity`` and ``run_delay_ns`` behave as ``accounting.Activity`` and
``tails.read_run_delay_ns``, which stay the reference (their tests run against both) and
what runs without a compiler. A version mismatch is logged once and the pure-Python
code runs: the host app starts either way.

Why: those two run at every wait span's edges and around every worker-thread call, and
in Python they cost ~4,800 and ~7,400 instructions a call (callgrind); compiled, a few
hundred, and no lock (a C function holding the interpreter lock runs to its end).
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["SPEEDUPS"]

_log = logging.getLogger("latency_ledger.collect")


def _speedups() -> Any:
    if os.environ.get("LATENCY_LEDGER_PURE_PYTHON", "").strip().lower() in {"1", "true", "yes"}:
        return None
    try:
        import latency_ledger_speedups
    except ImportError:  # not installed, or built for another interpreter
        return None
    try:
        ours, theirs = version("latency-ledger"), version("latency-ledger-speedups")
    except PackageNotFoundError:  # run from a source tree, not installed: one checkout
        return latency_ledger_speedups
    if ours != theirs:
        _log.warning(
            "latency-ledger: latency-ledger-speedups %s does not match latency-ledger %s;"
            " running without it (pip install 'latency-ledger[speedups]' installs the match)",
            theirs,
            ours,
        )
        return None
    return latency_ledger_speedups


SPEEDUPS: Any = _speedups()
