"""``LATENCY_LEDGER`` in settings, the environment on top, mistakes at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from latency_ledger_django.settings import read_settings

from latency_ledger.collect import CollectConfig


def test_defaults_without_the_setting() -> None:
    with override_settings(SETTINGS_MODULE="mysite.settings.production"):
        got = read_settings(environ={})
    assert got.enabled is True
    assert got.config == CollectConfig()
    assert got.collector is None
    assert got.service_name == "mysite"  # the settings module's package


def test_settings_then_environment() -> None:
    given = {"keep_spans": "all", "sample_rate": 0.5, "output_dir": "/tmp/x-traces"}
    with override_settings(LATENCY_LEDGER=given):
        got = read_settings(environ={"LATENCY_LEDGER_SAMPLE_RATE": "0.25"})
    assert got.config.keep_spans == "all"
    assert got.config.output_dir == Path("/tmp/x-traces")
    assert got.config.sample_rate == 0.25  # the deployment's variable wins


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"keep_span": "all"}, "unknown key.*keep_span"),
        ({"keep_spans": "most"}, "keep_spans='most'"),
        ({"sample_rate": "lots"}, "LATENCY_LEDGER"),
        (["keep_spans"], "must be a dict"),
    ],
)
def test_mistakes_are_improperly_configured(value: object, message: str) -> None:
    with (
        override_settings(LATENCY_LEDGER=value),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        read_settings(environ={})


def test_bad_environment_variable_names_it() -> None:
    with pytest.raises(ImproperlyConfigured, match="LATENCY_LEDGER_SAMPLE_RATE"):
        read_settings(environ={"LATENCY_LEDGER_SAMPLE_RATE": "half"})


def test_disabled_middleware_removes_itself() -> None:
    middleware = ["latency_ledger_django.LedgerMiddleware"]
    with override_settings(MIDDLEWARE=middleware, LATENCY_LEDGER={"enabled": False}):
        assert Client().get("/health").status_code == 200
