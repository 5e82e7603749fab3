"""The process-wide hooks: worker-thread calls charged to their request, a server
pool's calls counted as Python running, and the task factory installed per loop.

Contract: :class:`Hooks` installs them once (the thread-pool patches are shared by every
``Hooks`` and removed by the last to uninstall) and restores exactly what was there. A
call a request hands to a worker thread runs as a :class:`_ThreadCall`, its CPU charged
to the submitting request's account; a call of a server's own pool with no request
(gunicorn gthread's handling of a connection) runs as an :class:`_InPython`, counted in
``accounting.ACTIVITY`` and its wrapping charged to the request served in it. Each kind's
own cost is measured 1 in N (``THREAD_CALLS``, ``POOL_CALLS``; ``selfcost.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from collections.abc import Callable
from time import thread_time_ns
from typing import Any, ClassVar

from latency_ledger.collect.accounting import (
    ACTIVITY,
    CHARGED,
    CURRENT,
    PER_THREAD,
    Account,
    LoopState,
    enter_python,
    leave_python,
)
from latency_ledger.collect.compiled import SPEEDUPS
from latency_ledger.collect.selfcost import Meter
from latency_ledger.collect.steps import TaskFactory

# one worker-thread call's wrapping (the thread's CPU clock and activity around it)
THREAD_CALLS = Meter(stretches=2)


class PyThreadCall:
    """A callable run in a worker thread with its CPU charged to the submitter's account.

    The reference: :data:`_ThreadCall` is its compiled twin where
    ``latency-ledger-speedups`` is installed (``compiled.py``), the same steps at ~1/6
    of the instructions, tested alike."""

    __slots__ = ("_acct", "_func")

    def __init__(self, func: Callable[..., Any], acct: Account) -> None:
        self._func = func
        self._acct = acct

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # our CPU around the call is the collector's cost (1 in N measured, selfcost.py)
        sampled = THREAD_CALLS.due()
        c0 = thread_time_ns() if sampled else 0
        seg = PER_THREAD.seg
        outer, outer_t0 = seg.acct, seg.t0
        mine = seg.acct = self._acct
        was_active = seg.active
        if not was_active:  # enter_python, inline (a call per worker-thread call saved)
            seg.active = True
            seg.active_acct = mine
            ACTIVITY.move(mine, 1)
        seg.t0 = c1 = thread_time_ns()
        try:
            wrapper = mine.thread_wrapper
            if wrapper is not None:
                return wrapper(self._func, *args, **kwargs)
            return self._func(*args, **kwargs)
        finally:
            now = thread_time_ns()
            if not was_active:  # leave_python, inline
                seg.waiting = False
                if seg.active:
                    seg.active = False
                    ACTIVITY.move(seg.active_acct, -1)
                    seg.active_acct = None
            acct = seg.acct
            if acct is not None:
                spent = now - seg.t0
                CHARGED.ns += spent
                acct.charged_ns += spent
                if acct.depth == 0:
                    acct.cpu_ns += spent
            # a nested call (from_thread back into a worker) resumes the outer segment
            seg.acct = outer
            seg.t0 = now if outer is not None else outer_t0
            if sampled:
                THREAD_CALLS.record(c1 - c0 + thread_time_ns() - now)
            mine.overhead_ns += THREAD_CALLS.mean_ns


def _thread_call() -> Any:
    if SPEEDUPS is None:
        return PyThreadCall
    SPEEDUPS.configure_hooks(globals())  # THREAD_CALLS, looked up at each call
    return SPEEDUPS.ThreadCall


_ThreadCall: type[PyThreadCall] = _thread_call()


# one call of a server's pool with no request yet (gunicorn gthread's handling of a
# connection): its wrapping, charged to the request served in it
POOL_CALLS = Meter(stretches=2)


class _InPython:
    """A callable run in a pool thread with no request: counted in :data:`ACTIVITY`."""

    __slots__ = ("_func",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        seg = PER_THREAD.seg
        if seg.active:  # nested (a pool run inline): already counted
            return self._func(*args, **kwargs)
        # our CPU around the call is the collector's cost, charged to the request served
        # in it, if any (1 in N measured, selfcost.py)
        sampled = POOL_CALLS.due()
        c0 = thread_time_ns() if sampled else 0
        enter_python()
        seg.pool_cost_ns = POOL_CALLS.mean_ns
        c1 = thread_time_ns() if sampled else 0
        try:
            return self._func(*args, **kwargs)
        finally:
            c2 = thread_time_ns() if sampled else 0
            seg.pool_cost_ns = 0
            leave_python()
            if sampled:
                POOL_CALLS.record(c1 - c0 + thread_time_ns() - c2)


class Hooks:
    """The process-wide patches: installed once by the collector, removed on shutdown.

    Holds the task factories it set (per loop) and the thread-pool entry points it
    replaced, so :meth:`uninstall` restores exactly what was there before.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = (
            weakref.WeakKeyDictionary()
        )
        # the loop seen last (almost always the only one): a strong reference, dropped
        # by release_loop/uninstall, so a closed loop is not kept past its lifespan
        self._last: tuple[asyncio.AbstractEventLoop, LoopState] | None = None
        self.installed = False

    # The thread-pool patches are process-wide: shared by every Hooks, applied by the
    # first to install and removed by the last to uninstall, so two collectors (tests,
    # an app mounted twice) never wrap a call twice.
    _users = 0
    _patches: ClassVar[list[tuple[Any, str, Any]]] = []

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        Hooks._users += 1
        if Hooks._users == 1:
            self._patch_thread_pools()

    def _patch_thread_pools(self) -> None:
        original_submit = concurrent.futures.ThreadPoolExecutor.submit

        def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            acct = CURRENT.get()
            if acct is not None:
                if not isinstance(fn, _ThreadCall):
                    fn = _ThreadCall(fn, acct)
            elif not isinstance(fn, _ThreadCall | _InPython):
                # a server's own pool (gunicorn gthread serves each connection in one):
                # its Python holds the interpreter lock as much as a request's does
                fn = _InPython(fn)
            return original_submit(self, fn, *args, **kwargs)

        self._patch(concurrent.futures.ThreadPoolExecutor, "submit", submit)
        try:
            import anyio.to_thread
        except ImportError:  # pragma: no cover - anyio comes with Starlette
            return
        original_run_sync = anyio.to_thread.run_sync

        # a plain function returning anyio's coroutine: an ``async def`` wrapper would add
        # a frame to every resumption of it
        def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            acct = CURRENT.get()
            if acct is not None:
                func = _ThreadCall(func, acct)
            return original_run_sync(func, *args, **kwargs)

        self._patch(anyio.to_thread, "run_sync", run_sync)

    @staticmethod
    def _patch(owner: Any, name: str, replacement: Any) -> None:
        Hooks._patches.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    def ensure_loop(self, loop: asyncio.AbstractEventLoop) -> LoopState:
        """This loop's state, installing our task factory on first sight."""
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        state = self._loops.get(loop)
        if state is None:
            previous = loop.get_task_factory()
            state = LoopState(previous)
            state.factory = TaskFactory(state, previous)
            loop.set_task_factory(state.factory)
            self._loops[loop] = state
        self._last = (loop, state)
        return state

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give ``loop`` its previous task factory back (lifespan shutdown)."""
        state = self._loops.pop(loop, None)
        self._last = None
        if state is not None and loop.get_task_factory() is state.factory:
            loop.set_task_factory(state.previous_factory)

    def uninstall(self) -> None:
        for loop in list(self._loops):
            if not loop.is_closed():
                self.release_loop(loop)
        self._loops.clear()
        self._last = None
        if not self.installed:
            return
        self.installed = False
        Hooks._users -= 1
        if Hooks._users == 0:
            for owner, name, original in reversed(Hooks._patches):
                setattr(owner, name, original)
            Hooks._patches.clear()
