"""CollectConfig: defaults, validation, and every field from LATENCY_LEDGER_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from latency_ledger.collect import CollectConfig, config_from_env
from latency_ledger.errors import ConfigError


def test_environment_sets_every_kind_of_field() -> None:
    env = {
        "LATENCY_LEDGER_OUTPUT_DIR": "/tmp/x",
        "LATENCY_LEDGER_KEEP_SPANS": "all",
        "LATENCY_LEDGER_SAMPLE_RATE": "0.5",
        "LATENCY_LEDGER_MAX_QUEUE_SPANS": "7",
        "LATENCY_LEDGER_PROFILE_SLOWEST": "yes",
        "LATENCY_LEDGER_RECEIVE_SEND_SPANS": "0",
        "LATENCY_LEDGER_SERVICE_NAME": "shop",
    }
    config = config_from_env(environ=env)
    assert config == CollectConfig(
        output_dir=Path("/tmp/x"),
        keep_spans="all",
        sample_rate=0.5,
        max_queue_spans=7,
        profile_slowest=True,
        receive_send_spans=False,
        service_name="shop",
    )


def test_no_variables_keeps_the_base() -> None:
    base = CollectConfig(keep_spans="none")
    assert config_from_env(base, environ={}) is base


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LATENCY_LEDGER_SAMPLE_RATE", "lots", "LATENCY_LEDGER_SAMPLE_RATE='lots'"),
        ("LATENCY_LEDGER_PROFILE_SLOWEST", "maybe", "LATENCY_LEDGER_PROFILE_SLOWEST"),
        ("LATENCY_LEDGER_KEEP_SPANS", "some", "keep_spans='some'"),
        ("LATENCY_LEDGER_SAMPLE_RATE", "1.5", "sample_rate=1.5"),
        ("LATENCY_LEDGER_MAX_FILE_BYTES", "0", "max_file_bytes"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        config_from_env(environ={name: value})
