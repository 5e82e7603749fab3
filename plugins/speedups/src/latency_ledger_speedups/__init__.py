"""latency-ledger's optional compiled clocks (see ``_speedups.c``).

Contract: :class:`Activity` and :func:`run_delay_ns` behave exactly as
``latency_ledger.collect.accounting.Activity`` and ``latency_ledger.collect.tails.run_delay_ns``
(the pure-Python reference, used wherever this package is not installed or did not build);
the collector picks them up when importable, with ``TimedCoroutine`` (``collect.steps``)
and ``pause_and_start``/``resume_and_end`` (``collect.tails``), once the ``configure_*``
functions have handed them what they read. :func:`forget_run_delay_file` is for a forked
child (the collector registers it with ``os.register_at_fork``).
"""

from latency_ledger_speedups._speedups import (
    Activity,
    TimedCoroutine,
    configure_accounting,
    configure_steps,
    forget_run_delay_file,
    pause_and_start,
    resume_and_end,
    run_delay_ns,
)

__all__ = [
    "Activity",
    "TimedCoroutine",
    "configure_accounting",
    "configure_steps",
    "forget_run_delay_file",
    "pause_and_start",
    "resume_and_end",
    "run_delay_ns",
]
