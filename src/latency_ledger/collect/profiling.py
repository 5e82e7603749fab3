"""pyinstrument samples of a share of requests, bucketed for the ``ledger.profile`` attribute.

Contract: :class:`ProfileSampler` decides at a request's start whether to profile it (a
``profile_rate`` random share, plus, with ``profile_slowest``, the first request per
endpoint key in each ``profile_interval_s`` window: which request is the slowest cannot be
known before it runs) and runs at most one profile at a time per thread. ``follow`` gives
the request's account a wrapper that profiles each of its worker-thread calls (sync
endpoints) into the same summary.
:func:`summarize_session` turns a pyinstrument session into the compact JSON that
``latency_ledger.profiles`` reads: ``{"samples": N, "buckets": {bucket: seconds},
"top": [[function, seconds], ...]}``, kept under 2 KB, plus the native split below.

A sample is charged to the innermost frame that says something: a known library decides
its bucket, generic standard-library frames (``re``, ``functools``...) defer to their
caller, and code outside the interpreter's and the virtualenv's directories is
``application``. Samples where the task was awaiting are not interpreter time and are left
out.

Native CPU (time inside compiled extensions: bcrypt's ``hashpw``, pydantic-core, orjson,
zlib...). pyinstrument samples on the profile events of the profiled thread and puts a C
function on the stack only on its ``c_return``: such a sample's weight runs from the
previous sample to the moment the C call returned, and as no sample fired at its
``c_call`` (else that sample would have ended there), the Python part before the call is
shorter than one interval. :class:`CpuProfiler` reads the thread's CPU clock at every
sample (one clock read per sample, not per event), so each record carries the CPU it
covers, ``c``; a C-leaf record then holds between ``c - interval`` and ``c`` of native
CPU. The summary gains ``"cpu"`` (CPU the profile saw in the request's context),
``"native"`` (the sum of ``max(0, c - interval)``: booked, a lower bound, so a doubt
stays interpreter time as before), ``"native_max"`` (the sum of ``c``: the upper bound)
and ``"native_top"`` (the C functions, by booked native seconds). Waiting in C (a
``sleep``, a socket read, a blocking driver call) uses no CPU and so books nothing. The
``top`` view still names a builtin's Python caller; native is counted beside it.
"""

from __future__ import annotations

import json
import random
import sys
import sysconfig
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from time import thread_time_ns
from typing import Any

from latency_ledger.collect.accounting import PER_THREAD
from latency_ledger.endpoint import collapse_path
from latency_ledger.profiles import BUCKETS, frame_bucket, stack_bucket

MAX_TOP = 8
MAX_KEYS = 2_000  # endpoints tracked for "first per interval"; paths are attacker-chosen
MAX_CHARS = 2000
MAX_FUNCTION_CHARS = 80
MAX_NATIVE_TOP = 3
INTERVAL_S = 0.001  # pyinstrument's sampling interval for request profiles
_BUILTIN = "\x00<built-in>\x00"


def _library_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(sorted((root.rstrip("/") + "/" for root in roots), key=len, reverse=True))


_ROOTS = _library_roots()


def bucket_of(file_path: str) -> str | None:
    """The bucket a frame's file decides, or None for generic standard-library code."""
    return frame_bucket(file_path, _ROOTS)


def summarize_records(
    frame_records: Any,
    sample_count: int,
    cpu_ns: Sequence[int] | None = None,
    interval_s: float = INTERVAL_S,
) -> str:
    """The ``ledger.profile`` JSON for pyinstrument ``(call_stack, seconds)`` records.

    ``cpu_ns``: the thread CPU each record covers (:class:`CpuProfiler`), aligned with
    the records; without it the summary has no native split."""
    buckets: Counter[str] = Counter()
    top: Counter[str] = Counter()
    native_top: Counter[str] = Counter()
    cpu_seen = native = native_max = 0
    interval_ns = int(interval_s * 1e9)
    with_cpu = cpu_ns is not None and len(cpu_ns) == len(frame_records)
    for index, (stack, seconds) in enumerate(frame_records):
        if not stack or stack[-1].startswith("[await]"):
            continue
        bucket = stack_bucket(stack, _ROOTS)
        buckets[bucket] += seconds
        # a sample inside a C builtin (time.thread_time_ns, dict.get...) is its Python
        # caller's work: name the caller, as "where the time goes" means the code to read
        depth = len(stack) - 1
        while depth > 0 and _BUILTIN in stack[depth]:
            depth -= 1
        leaf = stack[depth].split("\x00")
        where = leaf[1].rsplit("/", 1)[-1] if len(leaf) > 1 else ""
        top[f"{leaf[0]} ({where})"[:MAX_FUNCTION_CHARS]] += seconds
        if with_cpu:
            # one thread cannot burn more CPU than the wall time between two samples: a
            # larger reading holds CPU from before the sample's start (profiler startup)
            cpu = min(max(0, cpu_ns[index]), int(seconds * 1e9))  # type: ignore[index]
            cpu_seen += cpu
            if _BUILTIN in stack[-1]:
                native_max += cpu
                booked = max(0, cpu - interval_ns)
                if booked:
                    native += booked
                    native_top[stack[-1].split("\x00", 1)[0][:MAX_FUNCTION_CHARS]] += booked
    doc: dict[str, Any] = {
        "samples": int(sample_count),
        "buckets": {name: round(buckets[name], 6) for name in BUCKETS if buckets[name] > 0},
        "top": [[name, round(seconds, 6)] for name, seconds in top.most_common(MAX_TOP)],
    }
    if with_cpu:
        doc["cpu"] = round(cpu_seen / 1e9, 6)
        doc["native"] = round(native / 1e9, 6)
        doc["native_max"] = round(native_max / 1e9, 6)
        doc["native_top"] = [
            [name, round(ns / 1e9, 6)] for name, ns in native_top.most_common(MAX_NATIVE_TOP)
        ]
    text = json.dumps(doc, separators=(",", ":"))
    while len(text) > MAX_CHARS and (doc["top"] or doc.get("native_top")):
        doc["top" if doc["top"] else "native_top"].pop()
        text = json.dumps(doc, separators=(",", ":"))
    return text


@cache
def cpu_profiler_class() -> Any:
    """pyinstrument's ``Profiler`` that also reads the thread's CPU clock at each sample
    (``cpu_ns``, aligned with the session's frame records). Built on first use, as
    pyinstrument is imported only when a request is profiled; if pyinstrument no longer
    has the hook it overrides, the plain Profiler (no native split)."""
    from pyinstrument import Profiler

    if not callable(getattr(Profiler, "_sampler_saw_call_stack", None)):
        return Profiler

    class CpuProfiler(Profiler):
        cpu_ns: list[int]
        _cpu_last: int

        def start(self, *args: Any, **kwargs: Any) -> None:
            self.cpu_ns = []
            self._cpu_last = thread_time_ns()
            super().start(*args, **kwargs)
            self._cpu_last = thread_time_ns()  # pyinstrument's own start is not the app's

        def _sampler_saw_call_stack(self, *args: Any) -> None:
            super()._sampler_saw_call_stack(*args)
            now = thread_time_ns()
            # CPU inside a wait span (SQLite's engine, a driver parsing rows in C) is the
            # wait's: the account's cpu_ns leaves it out, so the native split must too,
            # or it would claim the request's whole own CPU as native
            acct = PER_THREAD.seg.acct
            self.cpu_ns.append(0 if acct is not None and acct.depth else now - self._cpu_last)
            self._cpu_last = now

    return CpuProfiler


class ProfileSampler:
    """Which requests to profile, and pyinstrument around them (one per thread)."""

    def __init__(self, *, rate: float, first_per_interval: bool, interval_s: float) -> None:
        self._rate = rate
        self._first = first_per_interval
        self._interval_ns = int(interval_s * 1e9)
        self._last: dict[str, int] = {}
        self._collapsed: dict[str, str] = {}  # raw path -> collapse_path(raw path)
        self._busy = threading.local()
        self.enabled = rate > 0 or first_per_interval

    def start(self, key: str, now_ns: int) -> Any:
        """A running profiler if this request is to be profiled, else None."""
        if getattr(self._busy, "active", False):
            return None
        chosen = self._rate > 0 and random.random() < self._rate
        if not chosen and self._first:
            # the route is not known before the request runs: its path with ids collapsed
            # (cached: collapsing costs ~8 us, and most traffic repeats a few paths;
            # bounded, as paths are attacker-chosen)
            collapsed = self._collapsed.get(key)
            if collapsed is None:
                if len(self._collapsed) >= MAX_KEYS:
                    self._collapsed.clear()
                collapsed = self._collapsed[key] = collapse_path(key)
            key = collapsed
            last = self._last.get(key)
            if (last is None and len(self._last) < MAX_KEYS) or (
                last is not None and now_ns - last >= self._interval_ns
            ):
                self._last[key] = now_ns
                chosen = True
        if not chosen:
            return None
        profiler = cpu_profiler_class()(interval=INTERVAL_S, async_mode="enabled")
        profiler.start()
        self._busy.active = True
        return profiler

    def follow(self, profiler: Any, on_error: Callable[[], None]) -> Callable[..., Any]:
        """What runs the profiled request's worker-thread calls (``Account.thread_wrapper``):
        each under a profiler of its own thread, its records added to ``profiler``'s. A
        thread already profiling (a nested call) runs the call as is. The call's result
        and exceptions are the app's: a profiler that fails is ``on_error``, never raised."""
        extra: list[tuple[Any, Any, int]] = []
        profiler.worker_sessions = extra

        def run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            if getattr(self._busy, "active", False):
                return func(*args, **kwargs)
            try:
                worker = cpu_profiler_class()(interval=INTERVAL_S, async_mode="disabled")
                worker.start()
            except Exception:
                on_error()
                return func(*args, **kwargs)
            self._busy.active = True
            try:
                return func(*args, **kwargs)
            finally:
                self._busy.active = False
                try:
                    session = worker.stop()
                    extra.append(
                        (
                            session.frame_records,
                            getattr(worker, "cpu_ns", None),
                            session.sample_count,
                        )
                    )
                except Exception:
                    on_error()

        return run

    def stop(self, profiler: Any) -> str | None:
        self._busy.active = False
        session = profiler.stop()
        records = list(session.frame_records)
        cpu: list[int] | None = getattr(profiler, "cpu_ns", None)
        count = session.sample_count
        # the request's worker-thread calls (follow), each with its own readings
        for frame_records, cpu_ns, sample_count in getattr(profiler, "worker_sessions", ()):
            count += sample_count
            if cpu is not None and cpu_ns is not None and len(cpu_ns) == len(frame_records):
                cpu = [*cpu, *cpu_ns]
            else:
                cpu = None
            records.extend(frame_records)
        return summarize_records(records, count, cpu)
