"""The fast path, ``--jobs N`` and out-of-order input give the reference path's report.

The reference is ``analyze(..., reference=True)``: the plain reader (``read_traces``) and
``book_trace`` without a memo, one process, in reading order. Every other way must give
the same JSON report, compared whole: the fast reader with the classification memo,
2 and 3 worker processes, and the same spans shuffled across the whole file (which the
streaming pass cannot join, so the spill path groups them).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from latency_ledger.accumulate import Accumulation
from latency_ledger.analyze import AnalyzeOptions, analyze, analyze_share, default_rules
from latency_ledger.parallel import merge_stats
from latency_ledger.read import ReadStats
from latency_ledger.render.json import report_to_json
from latency_ledger.spill import spilled_traces

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "traces").glob("*.jsonl.gz"))
THIRD_PARTY = ROOT / "tests" / "data" / "traces"


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_gen", ROOT / "tests" / "read" / "gen.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _known_answers(path: Path) -> Path:
    """test_analyze's known-answer scenarios, written by its own writer."""
    spec = importlib.util.spec_from_file_location("_ta", ROOT / "tests" / "test_analyze.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    writer = module.TraceWriter()
    list(module._scenarios(writer))
    return writer.write(path)  # type: ignore[no-any-return]


def _json(paths: list[Path], **options: Any) -> dict[str, Any]:
    return report_to_json(analyze(paths, options=AnalyzeOptions(**options)))


def shuffle_spans(source: Path, target: Path, seed: int, per_line: int = 7) -> int:
    """Every span of ``source`` (OTLP JSON lines, maybe gzip) in a random order, a few per
    line, each with its own resource: a trace's spans end up all over the file."""
    opener = gzip.open if source.suffix == ".gz" else open
    spans: list[tuple[Any, Any]] = []
    with opener(source, "rt") as fh:
        for line in fh:
            if line.strip():
                for rs in json.loads(line)["resourceSpans"]:
                    for ss in rs.get("scopeSpans", ()):
                        spans.extend((rs.get("resource"), span) for span in ss["spans"])
    random.Random(seed).shuffle(spans)
    with open(target, "w") as out:
        for i in range(0, len(spans), per_line):
            groups = [
                {"resource": resource, "scopeSpans": [{"spans": [span]}]}
                for resource, span in spans[i : i + per_line]
            ]
            out.write(json.dumps({"resourceSpans": groups}) + "\n")
    return len(spans)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "gen.jsonl"
    _gen().write_otlp_jsonl(path, requests=1500, spans_per_request=12, seed=11)
    return path


def _inputs(tmp: Path, generated: Path) -> dict[str, list[Path]]:
    return {
        "generated": [generated],
        "known answers": [_known_answers(tmp / "known.jsonl")],
        "examples": EXAMPLES,
        "third-party": sorted(p for p in THIRD_PARTY.rglob("*") if p.is_file()),
    }


@pytest.mark.parametrize("name", ["generated", "known answers", "examples", "third-party"])
def test_fast_and_parallel_reports_equal_the_reference(
    name: str, generated: Path, tmp_path: Path
) -> None:
    paths = _inputs(tmp_path, generated)[name]
    reference = _json(paths, reference=True)
    assert reference["inputs"]["spans"] > 0
    assert _json(paths, jobs=1) == reference
    assert _json(paths, jobs=2) == reference
    assert _json(paths, jobs=3) == reference
    # spill: grouping through partition files when nothing may stay buffered
    assert _json(paths, jobs=1, max_buffered_spans=1) == reference
    assert _json(paths, jobs=2, max_buffered_spans=1) == reference


@pytest.mark.parametrize("name", ["generated", "examples"])
def test_spans_shuffled_across_the_file_give_the_ordered_report(
    name: str, generated: Path, tmp_path: Path
) -> None:
    paths = _inputs(tmp_path, generated)[name]
    shuffled = []
    for i, path in enumerate(paths):
        shuffled.append(tmp_path / f"shuffled-{i}.jsonl")
        shuffle_spans(path, shuffled[-1], seed=i)
    ordered = _json(paths, reference=True)
    # The plain one-pass reader cannot join them: late spans, partial traces.
    tiny_window = _json(shuffled, reference=True, idle_spans=50)
    assert tiny_window["inputs"]["skipped"].get("late_span", 0) > 0
    assert _json(shuffled, jobs=1, idle_spans=50) == ordered
    assert _json(shuffled, jobs=2, idle_spans=50) == ordered


def test_the_spill_path_holds_one_partition_at_a_time(generated: Path, tmp_path: Path) -> None:
    shuffled = tmp_path / "shuffled.jsonl"
    spans = shuffle_spans(generated, shuffled, seed=3)
    stats = ReadStats()
    traces = list(
        spilled_traces([shuffled], stats=stats, partitions=8, limits=AnalyzeOptions().limits)
    )
    assert stats.spans == spans == sum(len(t.spans) for t in traces)
    assert len({t.trace_id for t in traces}) == len(traces) == stats.traces == 1500
    # one partition's traces at a time: about an eighth, never all of them
    assert stats.max_in_flight < 1500 / 4


def test_out_of_order_input_is_regrouped_not_lost(generated: Path, tmp_path: Path) -> None:
    shuffled = tmp_path / "shuffled.jsonl"
    shuffle_spans(generated, shuffled, seed=5)
    options = AnalyzeOptions(idle_spans=50)
    _acc, stats = analyze_share([shuffled], options, default_rules(), (0, 1))
    assert stats.regrouped
    assert stats.traces == 1500
    assert "late_span" not in stats.skipped


def test_accumulations_of_disjoint_halves_merge_into_the_whole(generated: Path) -> None:
    options = AnalyzeOptions()
    rules = default_rules()
    whole, whole_stats = analyze_share([generated], options, rules, (0, 1))
    parts = [analyze_share([generated], options, rules, (k, 2)) for k in range(2)]
    assert 0 < parts[0][1].traces < whole_stats.traces
    merged: Accumulation = parts[0][0]
    merged.merge(parts[1][0])
    stats = merge_stats([s for _a, s in parts])
    assert stats.spans == whole_stats.spans
    assert stats.traces == whole_stats.traces
    from latency_ledger.accumulate import build_report

    assert report_to_json(build_report(merged, stats, options)) == report_to_json(
        build_report(whole, whole_stats, options)
    )


def test_bad_lines_are_noted_once_with_several_workers(generated: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = generated.read_bytes().splitlines(keepends=True)
    lines[3] = b'{"resourceSpans": [oops\n'
    lines[7] = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}\n'
    path.write_bytes(b"".join(lines))
    reference = analyze([path], options=AnalyzeOptions(reference=True))
    assert reference.inputs.problem_count == 2
    assert len(reference.inputs.problems) == 2
    for jobs in (1, 2):
        report = analyze([path], options=AnalyzeOptions(jobs=jobs))
        assert report.inputs == reference.inputs
        assert report_to_json(report) == report_to_json(reference)
