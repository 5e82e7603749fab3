"""latency-ledger's optional compiled clocks (see ``_speedups.c``).

Contract: each behaves exactly as its pure-Python reference in ``latency_ledger.collect``
(used wherever this package is not installed or did not build): ``Activity``
(``accounting.Activity``), ``run_delay_ns`` (``tails.read_run_delay_ns``),
``TimedCoroutine`` (``steps.PyTimedCoroutine``), ``ThreadCall`` (``hooks.PyThreadCall``),
``pause_and_start`` and ``resume_and_end`` (``tails``). The collector picks them up when
importable, once the ``configure_*`` functions have handed them what they read.
:func:`forget_run_delay_file` is for a forked child (registered here with
``os.register_at_fork``).
"""

import os

from latency_ledger_speedups._speedups import (
    Activity,
    ThreadCall,
    TimedCoroutine,
    configure_accounting,
    configure_hooks,
    configure_steps,
    forget_run_delay_file,
    pause_and_start,
    resume_and_end,
    run_delay_ns,
)

if hasattr(os, "register_at_fork"):
    # a forked child's thread would read its parent's thread's schedstat file ever after
    os.register_at_fork(after_in_child=forget_run_delay_file)

__all__ = [
    "Activity",
    "ThreadCall",
    "TimedCoroutine",
    "configure_accounting",
    "configure_hooks",
    "configure_steps",
    "forget_run_delay_file",
    "pause_and_start",
    "resume_and_end",
    "run_delay_ns",
]
