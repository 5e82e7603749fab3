"""The native CPU share of an endpoint's unprofiled requests, and its bound.

Contract: :func:`estimate_native` gives a group's columns with every unprofiled
request's CPU split into interpreter and native by the share its profiled requests
measured (the aggregate package's docstring, "Native CPU"), and the group's bound
(:class:`_NativeBound`); a group no request of which was profiled is returned unchanged.
Pure: the input columns are not changed, and the answer does not depend on row order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from latency_ledger.aggregate.columns import _Columns
from latency_ledger.model import NativeShare


@dataclass(frozen=True, slots=True, kw_only=True)
class _NativeBound:
    """A group's native CPU as booked, its bounds in ns, and its CPU."""

    profiled: int
    estimated: int
    native_ns: int
    low_ns: int
    high_ns: int
    cpu_ns: int

    def share(self) -> NativeShare:
        cpu = self.cpu_ns
        fraction = self.native_ns / cpu if cpu > 0 else 0.0
        return NativeShare(
            profiled=self.profiled,
            estimated=self.estimated,
            cpu_fraction=fraction,
            cpu_fraction_low=min(fraction, self.low_ns / cpu) if cpu > 0 else 0.0,
            cpu_fraction_high=max(fraction, self.high_ns / cpu) if cpu > 0 else 0.0,
        )


def _merge_bounds(bounds: Sequence[_NativeBound]) -> _NativeBound:
    return _NativeBound(
        profiled=sum(b.profiled for b in bounds),
        estimated=sum(b.estimated for b in bounds),
        native_ns=sum(b.native_ns for b in bounds),
        low_ns=sum(b.low_ns for b in bounds),
        high_ns=sum(b.high_ns for b in bounds),
        cpu_ns=sum(b.cpu_ns for b in bounds),
    )


def estimate_native(columns: _Columns) -> tuple[_Columns, _NativeBound | None]:
    """``columns`` with every unprofiled request's CPU split by the endpoint's native
    share (module docstring), and the group's bound; unchanged, None, when no request
    of the group measured its split."""
    if columns.sketch is not None:
        found = columns.sketch.estimate_native()
        if found is None:
            return columns, None
        out = _Columns()
        out.sketch, figures = found
        out.errors, out.from_totals = columns.errors, columns.from_totals
        return out, _NativeBound(
            profiled=figures[0],
            estimated=figures[1],
            native_ns=figures[2],
            low_ns=figures[3],
            high_ns=figures[4],
            cpu_ns=figures[5],
        )
    if 1 not in columns.native_seen:  # a scan at C speed: most groups were never profiled
        return columns, None
    seen = [i for i, flag in enumerate(columns.native_seen) if flag]
    interpreter, booked = columns.interpreter, columns.threads_booked
    # the wait for native libraries' threads is native whatever the profile says: the
    # split by profile is of the request's own CPU only
    native = [n - b for n, b in zip(columns.native, booked, strict=True)]
    cpu = [interpreter[i] + native[i] for i in range(len(native))]
    unseen = [i for i, flag in enumerate(columns.native_seen) if not flag]
    basis = unseen or seen
    mean_cpu = sum(cpu[i] for i in basis) / len(basis)
    profiled = [native[i] for i in seen]
    mean_native = sum(profiled) / len(seen)
    mean_max = sum(columns.native_max[i] for i in seen) / len(seen)
    spread = 0.0
    if len(seen) > 1:
        # fsum: exact, so the result does not depend on the order of the requests
        variance = math.fsum((n - mean_native) ** 2 for n in profiled) / (len(seen) - 1)
        spread = 2 * math.sqrt(variance / len(seen))
    fraction = min(1.0, mean_native / mean_cpu) if mean_cpu > 0 else 0.0
    low = max(0.0, (mean_native - spread) / mean_cpu) if mean_cpu > 0 else 0.0
    high = min(1.0, (mean_max + spread) / mean_cpu) if mean_cpu > 0 else 0.0
    out = _Columns()
    out.extend(columns)
    for i in unseen:
        share = int(cpu[i] * fraction)
        out.native[i] = share + booked[i]
        out.interpreter[i] = cpu[i] - share
    total_cpu = sum(cpu)
    unseen_cpu = sum(cpu[i] for i in unseen)
    seen_native = sum(profiled)
    seen_max = sum(columns.native_max[i] for i in seen)
    return out, _NativeBound(
        profiled=len(seen),
        estimated=len(unseen),
        native_ns=sum(out.native) - sum(booked),
        # the profiled requests' own figures, and the bounded share of the others' CPU
        low_ns=seen_native + int(unseen_cpu * low),
        high_ns=seen_max + int(unseen_cpu * high),
        cpu_ns=total_cpu,
    )
