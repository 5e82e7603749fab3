"""pyinstrument samples of a share of requests, bucketed for the ``ledger.profile`` attribute.

Contract: :class:`ProfileSampler` decides at a request's start whether to profile it (a
``profile_rate`` random share, plus, with ``profile_slowest``, the first request per
endpoint key in each ``profile_interval_s`` window: which request is the slowest cannot be
known before it runs) and runs at most one profile at a time per thread.
:func:`summarize_session` turns a pyinstrument session into the compact JSON that
``latency_ledger.profiles`` reads: ``{"samples": N, "buckets": {bucket: seconds},
"top": [[function, seconds], ...]}``, kept under 2 KB.

A sample is charged to the innermost frame that says something: a known library decides
its bucket, generic standard-library frames (``re``, ``functools``...) defer to their
caller, and code outside the interpreter's and the virtualenv's directories is
``application``. Samples where the task was awaiting are not interpreter time and are left
out.
"""

from __future__ import annotations

import json
import random
import sys
import sysconfig
import threading
from collections import Counter
from typing import Any

from latency_ledger.endpoint import collapse_path
from latency_ledger.profiles import BUCKETS, frame_bucket, stack_bucket

MAX_TOP = 8
MAX_KEYS = 2_000  # endpoints tracked for "first per interval"; paths are attacker-chosen
MAX_CHARS = 2000
MAX_FUNCTION_CHARS = 80


def _library_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(sorted((root.rstrip("/") + "/" for root in roots), key=len, reverse=True))


_ROOTS = _library_roots()


def bucket_of(file_path: str) -> str | None:
    """The bucket a frame's file decides, or None for generic standard-library code."""
    return frame_bucket(file_path, _ROOTS)


def summarize_records(frame_records: Any, sample_count: int) -> str:
    """The ``ledger.profile`` JSON for pyinstrument ``(call_stack, seconds)`` records."""
    buckets: Counter[str] = Counter()
    top: Counter[str] = Counter()
    for stack, seconds in frame_records:
        if not stack or stack[-1].startswith("[await]"):
            continue
        bucket = stack_bucket(stack, _ROOTS)
        buckets[bucket] += seconds
        # a sample inside a C builtin (time.thread_time_ns, dict.get...) is its Python
        # caller's work: name the caller, as "where the time goes" means the code to read
        depth = len(stack) - 1
        while depth > 0 and "\x00<built-in>\x00" in stack[depth]:
            depth -= 1
        leaf = stack[depth].split("\x00")
        where = leaf[1].rsplit("/", 1)[-1] if len(leaf) > 1 else ""
        top[f"{leaf[0]} ({where})"[:MAX_FUNCTION_CHARS]] += seconds
    doc: dict[str, Any] = {
        "samples": int(sample_count),
        "buckets": {name: round(buckets[name], 6) for name in BUCKETS if buckets[name] > 0},
        "top": [[name, round(seconds, 6)] for name, seconds in top.most_common(MAX_TOP)],
    }
    text = json.dumps(doc, separators=(",", ":"))
    while len(text) > MAX_CHARS and doc["top"]:
        doc["top"].pop()
        text = json.dumps(doc, separators=(",", ":"))
    return text


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
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="enabled")
        profiler.start()
        self._busy.active = True
        return profiler

    def stop(self, profiler: Any) -> str | None:
        self._busy.active = False
        session = profiler.stop()
        return summarize_records(session.frame_records, session.sample_count)
