"""Number and label formatting shared by the text and HTML renderers.

Contract: pure functions from model units (``*_ns``, ``*_fraction``) to short display
strings. Nothing here is part of the JSON contract.
"""

from __future__ import annotations

import math
import re

from latency_ledger.runtime import ASSUMED, RUNTIME_NAMES, UNKNOWN
from latency_ledger.verdict import display_name as target_name

__all__ = ["target_name"]  # re-exported: one naming of targets for both renderers

NS_PER_MS = 1_000_000

LABELS = {
    "dont_migrate": "Don't migrate",
    "marginal": "Marginal",
    "migration_could_pay": "Migration could pay",
}

PART_NAMES = {
    "database": "database",
    "network": "network",
    "interpreter": "interpreter",
    "native": "native code",
    "waiting": "waiting",
    "app": "app (upper bound)",
}

FINDING_NAMES = {
    "n_plus_one": "N+1 queries",
    "slow_statement": "Slow statement",
    "chatty_calls": "Repeated calls",
    "pool_wait": "Connection pool wait",
    "native_cpu": "Native CPU",
}

# C0/C1 controls (terminal escape sequences), bidi controls ("Trojan Source") and
# invisible characters (zero-width spaces and joiners, the BOM, tag characters) would let
# trace content rewrite or hide what a reader sees; they are shown as U+FFFD instead.
_INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e0fff"
)
_UNSAFE_CHARS = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")
_UNSAFE_CHARS_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}\u2028\u2029]")


def clean(text: str, *, one_line: bool = False) -> str:
    """Replace control and bidi-override characters; newlines and tabs survive unless one_line."""
    pattern = _UNSAFE_CHARS_ONE_LINE if one_line else _UNSAFE_CHARS
    return pattern.sub("\ufffd", text)


def runtime_name(key: str, version: str = "") -> str:
    """``"CPython 3.11.7"``; ``"unknown (judged as CPython)"`` when nothing said."""
    if key == UNKNOWN:
        return f"unknown (judged as {RUNTIME_NAMES[ASSUMED]})"
    name = RUNTIME_NAMES.get(key, key)
    return f"{name} {version}" if version else name


def label_name(label: str) -> str:
    return LABELS.get(label, label.replace("_", " ").capitalize())


def finding_name(kind: str) -> str:
    return FINDING_NAMES.get(kind, kind.replace("_", " ").capitalize())


def ms(ns: float | None) -> str:
    """``0.80 ms``, ``31.2 ms``, ``142 ms``, ``5.01 s``: about three significant digits."""
    if ns is None or not math.isfinite(ns):
        return "n/a"
    value = ns / NS_PER_MS
    magnitude = abs(value)
    if magnitude >= 999.5:  # what would print as 1000 ms
        seconds = value / 1000
        if magnitude >= 99_950:
            return f"{seconds:,.0f} s"
        return f"{seconds:.1f} s" if magnitude >= 9_995 else f"{seconds:.2f} s"
    if magnitude >= 99.95:
        return f"{value:.0f} ms"
    if magnitude >= 0.995 or value == 0:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def ms_range(low_ns: float, high_ns: float) -> str:
    """``3.5–5.7 ms``: one unit for both ends when they share it."""
    low, high = ms(min(low_ns, high_ns)), ms(max(low_ns, high_ns))
    low_value, _, low_unit = low.partition(" ")
    high_value, _, high_unit = high.partition(" ")
    if low_unit == high_unit:
        return f"{low_value}–{high_value} {high_unit}"
    return f"{low}–{high}"


def pct(fraction: float | None) -> str:
    """``8%``; small non-zero shares keep a decimal so they do not read as nothing."""
    if fraction is None or not math.isfinite(fraction):
        return "n/a"
    value = fraction * 100
    if value == 0:
        return "0%"
    if abs(value) < 0.1:
        return "<0.1%" if value > 0 else "-<0.1%"
    if abs(value) < 10:
        return f"{value:.1f}%"
    return f"{value:.0f}%"


def factor(value: float) -> str:
    """``5×``, ``2.5×``."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:g}×"


def count(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def shares(parts: dict[str, int]) -> dict[str, float]:
    """Each part's share of the parts' total (0 for an empty ledger)."""
    total = sum(max(v, 0) for v in parts.values())
    if total <= 0:
        return dict.fromkeys(parts, 0.0)
    return {k: max(v, 0) / total for k, v in parts.items()}


# What the process's CPU that no request was booked can be (collect/cpu.py).
UNBOOKED_SOURCES = (
    "start-up after the collector began, the export thread, the server's own work "
    "outside requests (accepting and parsing them), the app's background threads, "
    "garbage collection outside requests, and threads native libraries started that "
    "could not be charged to one request"
)


def unbooked_note(process_ns: int, booked_ns: int, fraction: float | None) -> str | None:
    """One sentence on the process's CPU no request was booked, or None (not recorded)."""
    if fraction is None:
        return None
    return (
        f"process CPU: {ms(process_ns)}, of which {ms(booked_ns)} booked to requests: "
        f"{pct(fraction)} unbooked ({UNBOOKED_SOURCES})"
    )


def bound_notes(
    wait_bounds: dict[str, int] | None,
    parts: dict[str, int],
    threads: tuple[int, int] | None,
) -> list[str]:
    """The estimated figures of one endpoint at p50, as sentences: how much of its
    database (network) part may be waiting for Python, how much came from waits whose
    end was not measured, and native libraries' threads' CPU (mean, as charged, bound)."""
    out = []
    if wait_bounds:
        for part in ("database", "network"):
            bound = wait_bounds.get(part, 0)
            if bound > 0 and parts.get(part, 0) > 0:
                out.append(
                    f"{part} p50 {ms(parts[part])}, of which up to {ms(bound)} may be "
                    "waiting for the interpreter or the event loop"
                )
        unbounded = wait_bounds.get("unbounded", 0)
        if unbounded > 0:
            out.append(
                f"{ms(unbounded)} of database and network at p50 is from spans whose end "
                "was not measured: no bound on the waiting in it"
            )
    if threads is not None and threads[1] > 0:
        out.append(
            f"native libraries' own threads: {ms(threads[0])} of CPU per request (mean; "
            f"up to {ms(threads[1])}), the wait for them booked native"
        )
    return out
