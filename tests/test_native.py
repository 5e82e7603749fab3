"""The native_cpu finding on hand-built endpoint statistics."""

from __future__ import annotations

import pytest

from latency_ledger.model import EndpointStats, NativeShare, ProfileSummary
from latency_ledger.native import NATIVE_CPU, native_finding

MS = 1_000_000


def stats(native_ms: float, share: NativeShare | None, function: str | None) -> EndpointStats:
    parts = {
        "database": 1 * MS,
        "network": 0,
        "interpreter": 5 * MS,
        "native": round(native_ms * MS),
        "waiting": 0,
    }
    profile = None
    if function is not None:
        profile = ProfileSummary(
            samples=3, bucket_fraction={"application": 1.0}, native_functions=((function, 0.9),)
        )
    return EndpointStats(
        service="auth",
        endpoint="POST /login",
        count=400,
        errors=0,
        cpu_measured=True,
        latency_ns={"p50": sum(parts.values()), "mean": sum(parts.values())},
        ledger_ns={"p50": parts, "mean": parts},
        native=share,
        profile=profile,
    )


def share(low: float, fraction: float = 0.9) -> NativeShare:
    return NativeShare(
        profiled=3,
        estimated=397,
        cpu_fraction=fraction,
        cpu_fraction_low=low,
        cpu_fraction_high=min(1.0, fraction + 0.05),
    )


@pytest.mark.parametrize(
    ("function", "advice"),
    [
        ("hashpw", "cost factor"),
        ("argon2_hash", "cost factor"),
        ("compress", "lower level"),
        ("dumps", "serialize less"),
        ("validate_python", "serialize less"),
        ("Pattern.sub", "regular expressions"),
        ("multiply", "make that work smaller"),
    ],
)
def test_advice_follows_the_top_native_function(function: str, advice: str) -> None:
    finding = native_finding(stats(45, share(0.85), function))
    assert finding is not None
    assert finding.kind == NATIVE_CPU
    assert finding.target == function
    assert finding.ns_per_request == 45 * MS
    assert finding.saving_ns_per_request == 45 * MS
    assert "saves none of it" in finding.detail
    assert advice in finding.detail


def test_no_finding_when_native_is_not_clearly_most_of_the_cpu() -> None:
    # the share's lower bound decides: 0.7 measured but maybe only 0.4
    assert native_finding(stats(45, share(0.4, 0.7), "hashpw")) is None
    assert native_finding(stats(45, None, "hashpw")) is None  # never profiled
    assert native_finding(stats(1.5, share(0.85), "hashpw")) is None  # under 2 ms


def test_without_function_names_the_finding_says_native_code() -> None:
    finding = native_finding(stats(45, share(0.85), None))
    assert finding is not None
    assert finding.target == "native code"
    assert "make that work smaller" in finding.detail


def test_the_finding_is_as_sure_as_the_share() -> None:
    # share 0.9 in [0.85, 0.95], from 3 profiled requests: +-0.05 / 0.9
    finding = native_finding(stats(45, share(0.85), "hashpw"))
    assert finding is not None
    assert finding.margin_fraction == pytest.approx(0.05 / 0.9)
    assert finding.sampled_requests == 3
