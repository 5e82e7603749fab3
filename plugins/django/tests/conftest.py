"""Fixtures for the Django plugin's tests: the example project, set up once per session.

- Django is configured with the example shop's settings (examples/django) on a seeded
  SQLite file in a temporary directory, so the tests drive the example's real views.
- ``make_collector``: a collector exporting to OTel's in-memory exporter, handed to the
  middleware through ``LATENCY_LEDGER = {"collector": ...}``; shut down after the test.
- ``nothing_leaks`` (autouse): no patched method, thread-pool hook,
  default collector or open request outlives a test.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "django"
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # django_servers.py, shared by the server tests
    sys.path.append(str(HERE))


def _configure_django(db: Path) -> None:
    """The example's settings module, configured in-process (no DJANGO_SETTINGS_MODULE in
    os.environ: server subprocesses started by other tests must not inherit it)."""
    if str(EXAMPLE) not in sys.path:
        sys.path.append(str(EXAMPLE))
    import django
    from django.conf import settings

    if not settings.configured:
        import django_shop.settings as example

        values = {name: getattr(example, name) for name in dir(example) if name.isupper()}
        sqlite = "django.db.backends.sqlite3"
        values["DATABASES"] = {
            "default": {"ENGINE": sqlite, "NAME": str(db)},
            "other": {"ENGINE": sqlite, "NAME": str(db.with_name("other.sqlite3"))},
        }
        values["MIDDLEWARE"] = ["django.middleware.common.CommonMiddleware"]
        settings.configure(**values)
    django.setup()
    from storefront.seed import seed

    seed()


# At import: the test modules import the example's models at collection time.
_DB_DIR = Path(tempfile.mkdtemp(prefix="ledger-django-tests-"))
_configure_django(_DB_DIR / "shop.sqlite3")


@pytest.fixture(scope="session", autouse=True)
def _remove_database() -> Iterator[None]:
    yield
    shutil.rmtree(_DB_DIR, ignore_errors=True)


def _snapshot() -> dict[str, Any]:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.template.base import Template

    import latency_ledger.collect as collect
    from latency_ledger.collect.accounting import CURRENT, PER_THREAD

    return {
        "render": Template.__dict__["render"],
        "connect": BaseDatabaseWrapper.__dict__["connect"],
        "prepare_cursor": BaseDatabaseWrapper.__dict__["_prepare_cursor"],
        "commit": BaseDatabaseWrapper.__dict__["commit"],
        "rollback": BaseDatabaseWrapper.__dict__["rollback"],
        "submit": concurrent.futures.ThreadPoolExecutor.__dict__["submit"],
        "default_collector": collect._Default.collector,
        "provider": trace._TRACER_PROVIDER,
        "current": CURRENT.get(),
        "segment": PER_THREAD.seg.acct,
    }


@pytest.fixture(autouse=True)
def nothing_leaks() -> Iterator[None]:
    before = _snapshot()
    yield
    assert _snapshot() == before
    from latency_ledger_django import plugin

    assert not plugin.active


@pytest.fixture
def make_collector() -> Iterator[Callable[..., tuple[Any, InMemorySpanExporter]]]:
    from latency_ledger.collect import CollectConfig, Collector

    made: list[Any] = []

    def make(**overrides: Any) -> tuple[Any, InMemorySpanExporter]:
        exporter = overrides.pop("exporter", None) or InMemorySpanExporter()
        overrides.setdefault("keep_spans", "all")
        config = CollectConfig(set_global_provider=False, **overrides)
        collector = Collector(config, exporter=exporter, load_plugins=False)
        made.append(collector)
        return collector, exporter

    yield make
    for collector in made:
        collector.shutdown()


@pytest.fixture
def exported() -> Callable[[Any, InMemorySpanExporter], list[Any]]:
    """Every span the collector has handed to its exporter so far."""

    def read(collector: Any, exporter: InMemorySpanExporter) -> list[Any]:
        collector.flush()
        return list(exporter.get_finished_spans())

    return read
