"""The native part in every renderer: an endpoint whose CPU is mostly bcrypt."""

from __future__ import annotations

import dataclasses

import pytest

from latency_ledger.model import NativeShare, ProfileSummary, Report
from latency_ledger.render.html import render_html
from latency_ledger.render.json import report_to_json
from latency_ledger.render.text import render_text

from .conftest import ledger

LOGIN = "POST /login"
NATIVE = NativeShare(
    profiled=3, estimated=297, cpu_fraction=0.93, cpu_fraction_low=0.9, cpu_fraction_high=0.95
)


@pytest.fixture
def with_login(report: Report) -> Report:
    """The sample report with /search's ledger turned into a bcrypt login's: 70 ms of
    CPU at p50, 65 of it native, measured on 3 profiled requests."""
    search = report.endpoints[-1]
    profile = search.profile
    assert profile is not None
    login = dataclasses.replace(
        search,
        endpoint=LOGIN,
        ledger_ns={
            key: ledger(database=1.0, network=0.0, interpreter=5.0, native=65.0, waiting=1.0)
            for key in ("p50", "p95", "p99", "mean")
        },
        latency_ns=dict.fromkeys(("p50", "p95", "p99", "mean"), 72_000_000),
        native=NATIVE,
        profile=dataclasses.replace(
            profile, native_functions=(("hashpw", 0.98), ("<script>", 0.02))
        ),
    )
    assert isinstance(login.profile, ProfileSummary)
    return dataclasses.replace(report, endpoints=(*report.endpoints[:-1], login))


def test_json_has_the_native_part_and_how_it_was_measured(with_login: Report) -> None:
    doc = report_to_json(with_login)
    (login,) = [e for e in doc["endpoints"] if e["endpoint"] == LOGIN]
    assert login["ledger_ms"]["p50"] == {
        "database": 1.0, "network": 0.0, "interpreter": 5.0, "native": 65.0, "waiting": 1.0,
    }  # fmt: skip
    assert login["native"] == {
        "profiled": 3,
        "estimated": 297,
        "cpu_fraction": 0.93,
        "cpu_fraction_range": [0.9, 0.95],
    }
    assert login["profile"]["native_functions"][0] == {"function": "hashpw", "fraction": 0.98}
    others = [e for e in doc["endpoints"] if e["endpoint"] != LOGIN]
    assert all(e["native"] is None for e in others)


def test_html_draws_native_and_says_how_it_was_measured(with_login: Report) -> None:
    html = render_html(with_login)
    assert 'class="p-native"' in html
    assert "native code (range 90%-95%), measured on 3 profiled requests" in html
    assert "<code>hashpw</code> 98%" in html
    # a function name is trace content: escaped
    assert "<code>&lt;script&gt;</code> 2.0%" in html


def test_text_adds_the_native_column_only_when_measured(with_login: Report, report: Report) -> None:
    text = render_text(with_login, width=140)
    assert "nat%" in text
    (row,) = [line for line in text.splitlines() if LOGIN in line]
    # db/net/cpu/native/wait shares of 72 ms: 1, 0, 7, 90, 1
    assert row.split()[-6:-1] == ["1", "0", "7", "90", "1"]
    assert "nat%" not in render_text(report, width=140)
