"""The JSON lines file exporter: deleted folders, full disks, bounded output (issue 13,
defects 5 and 6; issue 12, item 4)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from latency_ledger.analyze import analyze
from latency_ledger.collect import CollectConfig, Collector, LedgerMiddleware
from latency_ledger.collect.files import JsonLinesFileExporter

SUCCESS, FAILURE = SpanExportResult.SUCCESS, SpanExportResult.FAILURE


def spans(count: int = 2) -> Sequence[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for i in range(count):
        with tracer.start_as_current_span(f"s{i}", attributes={"pad": "x" * 200}):
            pass
    return exporter.get_finished_spans()


def trace_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("traces-*.jsonl"))


def test_a_deleted_folder_is_noticed_counted_and_written_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    exporter = JsonLinesFileExporter(out, max_file_bytes=1 << 20)
    assert exporter.export(spans(3)) == SUCCESS
    assert exporter.export(spans(2)) == SUCCESS
    shutil.rmtree(out)  # the file stays open: writes would go to a deleted inode
    with caplog.at_level(logging.WARNING, "latency_ledger.collect"):
        assert exporter.export(spans(1)) == SUCCESS
    assert exporter.take_lost() == 5
    assert exporter.take_lost() == 0
    assert "was deleted; its 5 spans are lost" in caplog.text
    (path,) = trace_files(out)  # a new folder and file, holding the new span
    assert path.read_text().count("\n") == 1
    exporter.shutdown()


async def _get(app: Any, path: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)


def test_the_report_shows_what_a_deleted_folder_lost(tmp_path: Path) -> None:
    # Defect 5: 9,698 requests vanished with stats saying 0 dropped, 0 errors.
    out = tmp_path / "traces"
    collector = Collector(
        CollectConfig(output_dir=out, keep_spans="none", set_global_provider=False),
        load_plugins=False,
    )

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = LedgerMiddleware(Starlette(routes=[Route("/hi", hello)]), collector=collector)
    try:
        for _ in range(7):
            asyncio.run(_get(app, "/hi"))
        collector.flush()
        shutil.rmtree(out)
        asyncio.run(_get(app, "/hi"))  # written to a new file: the loss is noticed here
        collector.flush()
        asyncio.run(_get(app, "/hi"))  # its SERVER span carries the count
        collector.flush()
    finally:
        collector.shutdown()
    report = analyze([out])
    assert report.inputs.requests == 2
    assert report.inputs.collector["dropped_spans"] == 7


class _FullDisk:
    """A file on a disk with ``room`` bytes left: a short write, then ENOSPC."""

    def __init__(self, raw: Any, room: int) -> None:
        self.raw = raw
        self.room = room

    def write(self, data: Any) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.room)
        self.room -= n
        return int(self.raw.write(bytes(data[:n])))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _FullDiskExporter(JsonLinesFileExporter):
    room = 0

    def _open(self) -> None:
        super()._open()
        self._file = _FullDisk(self._file, self.room)


def test_a_full_disk_leaves_no_empty_files_and_no_cut_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Defect 6: 44 empty files in 30 s plus a truncated line.
    exporter = _FullDiskExporter(tmp_path, max_file_bytes=1 << 20)
    exporter.room = 0
    with caplog.at_level(logging.WARNING, "latency_ledger.collect"):
        for _ in range(40):
            assert exporter.export(spans(1)) == FAILURE
    assert len(trace_files(tmp_path)) == 1  # one file, kept open, not 40
    assert caplog.text.count("cannot write traces") == 1  # once per outage
    exporter.shutdown()
    assert trace_files(tmp_path) == []  # nothing could be written: no file left


def test_a_short_write_is_cut_back_to_the_last_whole_line(tmp_path: Path) -> None:
    exporter = _FullDiskExporter(tmp_path, max_file_bytes=1 << 20)
    exporter.room = 1500  # one batch (~1 KB) fits, the second is cut mid-line
    assert exporter.export(spans(2)) == SUCCESS
    assert exporter.export(spans(2)) == FAILURE
    exporter._file.room = 10_000  # space freed
    assert exporter.export(spans(1)) == SUCCESS
    exporter.shutdown()
    (path,) = trace_files(tmp_path)
    lines = path.read_text().splitlines()
    assert [
        len(json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]) for line in lines
    ] == [
        2,
        1,
    ]


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in trace_files(directory))


def test_the_folder_never_exceeds_its_bound(tmp_path: Path) -> None:
    # Issue 12, item 4: a long-running service must not fill its disk.
    (tmp_path / "notes.txt").write_text("not ours: never deleted")
    bound = 20_000
    writers = [
        JsonLinesFileExporter(tmp_path, max_file_bytes=6_000, max_total_bytes=bound),
        JsonLinesFileExporter(tmp_path, max_file_bytes=6_000, max_total_bytes=bound),
    ]
    writers[1]._prefix += "-second"  # another process
    sizes = []
    for i in range(120):
        writer = writers[i % 2] if i < 60 else writers[0]
        assert writer.export(spans(1)) == SUCCESS
        writer._next_scan = 0.0  # the test is faster than RESCAN_S: rescan every write
        sizes.append(_dir_bytes(tmp_path))
    assert max(sizes) <= bound
    assert sizes[-1] > bound // 2  # it holds recent data, not nothing
    assert (tmp_path / "notes.txt").exists()
    assert writers[0].deleted + writers[1].deleted >= 10
    for writer in writers:
        writer.shutdown()


def test_the_folder_keeps_at_most_max_files(tmp_path: Path) -> None:
    exporter = JsonLinesFileExporter(tmp_path, max_file_bytes=1500, max_files=3)
    for _ in range(20):
        assert exporter.export(spans(1)) == SUCCESS
        assert len(trace_files(tmp_path)) <= 3
        assert exporter.paths[-1] in trace_files(tmp_path)  # the one being written stays
    assert len(exporter.paths) >= 6
    exporter.shutdown()
