"""A collector made before a real ``os.fork()`` works in the child (gunicorn --preload).

The parent serves a request (so its export thread runs and its trace file is open), then
forks. Expected: the child's two requests reach the child's own file (named by its pid)
through its own export thread, without any flush; none of them lands in the parent's
file; the parent's spans buffered at the fork are not written twice. The child reports
through its exit status and exits with ``os._exit`` (no pytest teardown there).
"""

from __future__ import annotations

import json
import os
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

MIDDLEWARE = ["latency_ledger_django.LedgerMiddleware"]


def hello(request: HttpRequest, n: int) -> HttpResponse:
    return HttpResponse("hello")


URLS = types.ModuleType("ledger_fork_urls")
URLS.urlpatterns = [path("hello/<int:n>", hello)]  # type: ignore[attr-defined]


def server_paths(directory: Path, pid: int) -> list[str]:
    """``url.path`` of every SERVER span in the files process ``pid`` wrote."""
    found: list[str] = []
    for file in sorted(directory.glob(f"traces-*-{pid}-*.jsonl")):
        for line in file.read_text().splitlines():
            for resource in json.loads(line)["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    for span in scope["spans"]:
                        if span["kind"] == 2:
                            attrs = {a["key"]: a["value"] for a in span.get("attributes", [])}
                            found.append(attrs["url.path"]["stringValue"])
    return sorted(found)


def child(client: Client, out: Path) -> int:
    """In the forked child: 2 requests, then wait (bounded) for the export thread."""
    for n in (2, 3):
        if client.get(f"/hello/{n}").status_code != 200:
            return 3
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server_paths(out, os.getpid()) == ["/hello/2", "/hello/3"]:
            return 0
        time.sleep(0.02)
    return 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_collector_made_before_fork_exports_in_the_child(
    make_collector: Callable[..., Any], tmp_path: Path
) -> None:
    from latency_ledger.collect import CollectConfig, Collector

    config = CollectConfig(
        set_global_provider=False,
        keep_spans="none",
        output_dir=tmp_path,
        export_interval_s=0.05,
        record_raw_path=True,  # tells the requests apart by url.path
    )
    collector = Collector(config, load_plugins=False)
    settings = {"MIDDLEWARE": MIDDLEWARE, "ROOT_URLCONF": URLS}
    try:
        with override_settings(**settings, LATENCY_LEDGER={"collector": collector}):
            client = Client()
            assert client.get("/hello/1").status_code == 200
            collector.flush()  # the parent's file is open, its export thread started
            assert client.get("/hello/9").status_code == 200  # buffered at the fork
            with warnings.catch_warnings():  # 3.12+: "multi-threaded process forked"
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                status = 1
                try:
                    status = child(client, tmp_path)
                finally:
                    os._exit(status)
            _, wait_status = os.waitpid(pid, 0)
            collector.flush()
    finally:
        collector.shutdown()
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert server_paths(tmp_path, pid) == ["/hello/2", "/hello/3"]
    assert server_paths(tmp_path, os.getpid()) == ["/hello/1", "/hello/9"]
