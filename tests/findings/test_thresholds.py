"""Thresholds and setup statements (findings.thresholds)."""

from __future__ import annotations

from typing import Any

import pytest

from latency_ledger.errors import ConfigError
from latency_ledger.findings import Thresholds, is_setup_statement


@pytest.mark.parametrize(
    "bad",
    [
        {"n_plus_one_min_repeats": 1},
        {"chatty_min_ns": -1},
        {"n_plus_one_min_fraction": 1.5},
        {"slow_statements_top": -1},
    ],
)
def test_bad_thresholds_are_a_config_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Thresholds(**bad)


@pytest.mark.parametrize(
    ("statement", "setup"),
    [
        ("BEGIN", True),
        ("  commit;", True),
        ("PRAGMA synchronous = FULL", True),
        ('RELEASE SAVEPOINT "s1"', True),
        ("SHOW server_version", True),
        ("SELECT begin FROM t", False),
        ("settle_accounts()", False),
        ("", False),
    ],
)
def test_setup_statements_are_told_by_their_first_keyword(statement: str, setup: bool) -> None:
    assert is_setup_statement(statement) is setup
