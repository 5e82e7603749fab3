from __future__ import annotations

import math

import pytest

from latency_ledger.render._format import clean, ms, ms_range, pct, shares


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (0, "0.0 ms"),
        (800_000, "0.80 ms"),
        (996_000, "1.0 ms"),
        (31_200_000, "31.2 ms"),
        (99_960_000, "100 ms"),
        (142_000_000, "142 ms"),
        (999_600_000, "1.00 s"),
        (5_009_000_000, "5.01 s"),
        (37_500_000_000, "37.5 s"),
        (123_400_000_000, "123 s"),
        (None, "n/a"),
        (math.nan, "n/a"),
    ],
)
def test_ms(ns: float | None, expected: str) -> None:
    assert ms(ns) == expected


def test_ms_range_shares_the_unit() -> None:
    assert ms_range(1_550_000, 2_480_000) == "1.6–2.5 ms"
    assert ms_range(2_480_000, 1_550_000) == "1.6–2.5 ms"
    assert ms_range(900_000_000, 1_200_000_000) == "900 ms–1.20 s"


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.0, "0%"), (0.0004, "<0.1%"), (0.0662, "6.6%"), (0.77, "77%"), (1.0, "100%")],
)
def test_pct(fraction: float, expected: str) -> None:
    assert pct(fraction) == expected


def test_shares_of_an_empty_ledger_are_zero() -> None:
    assert shares({"database": 3, "app": 1}) == {"database": 0.75, "app": 0.25}
    assert shares({"database": 0, "app": 0}) == {"database": 0.0, "app": 0.0}


def test_clean_replaces_controls_and_bidi_overrides() -> None:
    assert clean("a\x1b[31mb\u202ec\nd\te") == "a\ufffd[31mb\ufffdc\nd\te"
    assert clean("a\nb\u2028c", one_line=True) == "a\ufffdb\ufffdc"


def test_clean_marks_invisible_and_bidi_characters() -> None:
    # Issue 13, defect 8: zero-width and bidi control characters reached the HTML unmarked.
    hidden = "\u200b\u200c\u200d\u2060\ufeff\u061c\u2067\u2069\u00ad\U000e0041\ufe0f"
    assert clean(f"GET /a{hidden}b") == "GET /a" + "\ufffd" * len(hidden) + "b"
    assert clean("caf\u00e9 \u4e2d\u6587 \u0645\u0631\u062d\u0628\u0627") == (
        "caf\u00e9 \u4e2d\u6587 \u0645\u0631\u062d\u0628\u0627"  # visible text is kept
    )
