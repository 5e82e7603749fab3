"""OTLP JSON lines and documents, built by hand: every spelling the readers accept."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from latency_ledger.model import Span, SpanKind, Trace
from latency_ledger.read import ReadStats, read_traces

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
CHILD = "00000000000000a1"


def span(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": ROOT,
        "name": "GET /orders/{id}",
        "kind": 2,
        "startTimeUnixNano": "1000",
        "endTimeUnixNano": "5000",
    }
    return base | fields


def request(*spans: dict[str, Any], service: str | None = "shop") -> dict[str, Any]:
    resource = (
        {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
        if service
        else {}
    )
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}


def write_lines(path: Path, *units: dict[str, Any] | str) -> Path:
    text = "".join((u if isinstance(u, str) else json.dumps(u)) + "\n" for u in units)
    path.write_text(text)
    return path


def read(*paths: Path, **kwargs: Any) -> tuple[list[Trace], ReadStats]:
    stats = ReadStats()
    return list(read_traces(list(paths), stats=stats, **kwargs)), stats


def only_span(traces: list[Trace]) -> Span:
    [trace] = traces
    [one] = trace.spans
    return one


def test_one_line_gives_the_normalized_span(tmp_path: Path) -> None:
    expected = Span(
        trace_id=TRACE,
        span_id=ROOT,
        parent_span_id="",
        name="GET /orders/{id}",
        kind=SpanKind.SERVER,
        start_ns=1000,
        end_ns=5000,
        is_error=False,
        attributes={},
        service="shop",
        resource={"service.name": "shop"},
    )
    traces, stats = read(write_lines(tmp_path / "a.jsonl", request(span())))
    assert only_span(traces) == expected
    assert (stats.files, stats.spans, stats.traces, dict(stats.skipped)) == (1, 1, 1, {})
    assert stats.bytes_read == (tmp_path / "a.jsonl").stat().st_size


def test_base64_and_upper_hex_ids_give_the_same_span(tmp_path: Path) -> None:
    def b64(hex_id: str) -> str:
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    ids = {"traceId": TRACE, "spanId": CHILD, "parentSpanId": ROOT}
    hex_line = request(span(**ids))
    upper_line = request(span(**{k: v.upper() for k, v in ids.items()}))
    b64_line = request(span(**{k: b64(v) for k, v in ids.items()}))
    assert b64(CHILD) == "AAAAAAAAAKE="
    spans = [
        only_span(read(write_lines(tmp_path / f"{i}.jsonl", unit))[0])
        for i, unit in enumerate([hex_line, upper_line, b64_line])
    ]
    assert spans[0].trace_id == TRACE
    assert spans[0].span_id == CHILD
    assert spans[0].parent_span_id == ROOT
    assert spans[0] == spans[1] == spans[2]


def test_kinds_as_ints_and_names(tmp_path: Path) -> None:
    kinds = [1, "SPAN_KIND_SERVER", 3, "SPAN_KIND_PRODUCER", 5, "SPAN_KIND_UNSPECIFIED", 42]
    spans = [span(spanId=f"{i + 1:016x}", kind=k) for i, k in enumerate(kinds)]
    traces, _ = read(write_lines(tmp_path / "k.jsonl", request(*spans)))
    got = [s.kind for s in sorted(traces[0].spans, key=lambda s: s.span_id)]
    assert got == [
        SpanKind.INTERNAL,
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.UNSPECIFIED,
        SpanKind.UNSPECIFIED,  # unknown numbers are not an error
    ]


def test_int64_as_strings_or_numbers(tmp_path: Path) -> None:
    as_numbers = span(
        startTimeUnixNano=1_700_000_000_123_456_789, endTimeUnixNano=1_700_000_001_000_000_000
    )
    as_strings = span(
        startTimeUnixNano="1700000000123456789", endTimeUnixNano="1700000001000000000"
    )
    a = only_span(read(write_lines(tmp_path / "n.jsonl", request(as_numbers)))[0])
    b = only_span(read(write_lines(tmp_path / "s.jsonl", request(as_strings)))[0])
    assert (a.start_ns, a.end_ns) == (1_700_000_000_123_456_789, 1_700_000_001_000_000_000)
    assert a == b


def test_attribute_values_become_python_values(tmp_path: Path) -> None:
    attributes = [
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "i_str", "value": {"intValue": "9007199254740993"}},  # > 2**53: exact
        {"key": "i_num", "value": {"intValue": 42}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "d_int", "value": {"doubleValue": 2}},
        {"key": "d_nan", "value": {"doubleValue": "NaN"}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "bytes", "value": {"bytesValue": base64.b64encode(b"\x01\xff").decode()}},
        {
            "key": "arr",
            "value": {"arrayValue": {"values": [{"stringValue": "x"}, {"intValue": "7"}]}},
        },
        {
            "key": "kv",
            "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": False}}]}},
        },
        {"key": "empty", "value": {}},
        {"key": "missing"},
    ]
    got = only_span(
        read(write_lines(tmp_path / "a.jsonl", request(span(attributes=attributes))))[0]
    )
    attrs = dict(got.attributes)
    assert math.isnan(attrs.pop("d_nan"))  # type: ignore[arg-type]
    assert attrs == {
        "s": "text",
        "i_str": 9007199254740993,
        "i_num": 42,
        "d": 1.5,
        "d_int": 2.0,
        "b": True,
        "bytes": "01ff",
        "arr": ("x", 7),
        "kv": (("k", False),),
        "empty": None,
        "missing": None,
    }
    assert type(attrs["d_int"]) is float


def test_status_error_as_int_or_name(tmp_path: Path) -> None:
    statuses = [
        {"code": 2},
        {"code": "STATUS_CODE_ERROR"},
        {"code": 1},
        {"code": "STATUS_CODE_OK"},
        {},
    ]
    spans = [span(spanId=f"{i + 1:016x}", status=st) for i, st in enumerate(statuses)]
    traces, _ = read(write_lines(tmp_path / "e.jsonl", request(*spans)))
    got = [s.is_error for s in sorted(traces[0].spans, key=lambda s: s.span_id)]
    assert got == [True, True, False, False, False]


def test_no_service_name_is_unknown_service(tmp_path: Path) -> None:
    got = only_span(read(write_lines(tmp_path / "a.jsonl", request(span(), service=None)))[0])
    assert got.service == "unknown_service"


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    unit = request(span(flags=257, events=[{"name": "e", "x": [1, {}]}], newField={"a": 1}))
    unit["futureTopLevel"] = [1, 2, 3]
    got = only_span(read(write_lines(tmp_path / "a.jsonl", unit))[0])
    assert got.span_id == ROOT


def test_wrappers_and_old_instrumentation_library_spans(tmp_path: Path) -> None:
    inner = request(span())
    resource_spans = inner["resourceSpans"]
    old = {
        "resourceSpans": [
            {
                "resource": resource_spans[0]["resource"],
                "instrumentationLibrarySpans": [{"spans": [span()]}],
            }
        ]
    }
    shapes = {
        "result": {"result": inner},
        "batches": {"batches": resource_spans},
        "trace": {"trace": inner},
        "old": old,
    }
    for name, unit in shapes.items():
        traces, stats = read(write_lines(tmp_path / f"{name}.json", unit))
        assert only_span(traces).service == "shop", name
        assert dict(stats.skipped) == {}, name


def test_pretty_printed_document(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(request(span(), span(spanId=CHILD, parentSpanId=ROOT)), indent=2))
    traces, stats = read(path)
    assert [len(t.spans) for t in traces] == [2]
    assert dict(stats.skipped) == {}


def test_invalid_document_names_the_line_of_the_error(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    text = json.dumps(request(span()), indent=2).splitlines()
    text[5] = text[5] + " oops"  # line 6
    path.write_text("\n".join(text))
    traces, stats = read(path)
    assert traces == []
    assert dict(stats.skipped) == {"invalid_json": 1}
    assert stats.problems[0].startswith(f"{path}:6: invalid JSON:")


def test_truncated_last_line_is_one_problem_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    full = json.dumps(request(span(traceId="1" * 32)))
    write_lines(path, request(span()), "", request(span(traceId="2" * 32)))
    with path.open("a") as f:
        f.write(full[: len(full) // 2])  # line 4, cut mid-way by a crash
    traces, stats = read(path)
    assert sorted(t.trace_id for t in traces) == ["2" * 32, TRACE]
    assert dict(stats.skipped) == {"invalid_json_line": 1}
    assert stats.problems == [f"{path}:4: invalid JSON: Input data was truncated"]


def test_broken_first_line_still_reads_as_json_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "b.jsonl", '{"resourceSpans": [', request(span()))
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"invalid_json_line": 1}
    assert stats.problems[0].startswith(f"{path}:1: invalid JSON")


def test_log_and_metric_lines_are_counted_not_reported_one_by_one(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "mixed.jsonl",
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}]}]}]},
        request(span()),
        {"resourceMetrics": [{"scopeMetrics": []}]},
    )
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"non_trace_line": 2}
    assert stats.problems == [f"{path}: skipped 2 lines of logs/metrics (not traces)"]


def test_bad_spans_are_skipped_one_by_one_with_their_line(tmp_path: Path) -> None:
    good = span(spanId="00000000000000b1")
    no_end = span(spanId="00000000000000b2", endTimeUnixNano="0")
    missing_end = span(spanId="00000000000000b3")
    del missing_end["endTimeUnixNano"]
    backwards = span(spanId="00000000000000b4", startTimeUnixNano="9000")
    bad_id = span(spanId="not-an-id")
    path = write_lines(
        tmp_path / "bad.jsonl",
        request(span()),
        request(good, no_end, missing_end, backwards, bad_id),
    )
    traces, stats = read(path)
    assert sorted(s.span_id for s in traces[0].spans) == ["00000000000000b1", ROOT]
    assert dict(stats.skipped) == {
        "span_without_end_time": 2,
        "end_before_start": 1,
        "invalid_id": 1,
    }
    assert stats.problems == [
        f"{path}:2: span 00000000000000b2 'GET /orders/{{id}}' has no end time",
        f"{path}:2: span 00000000000000b3 'GET /orders/{{id}}' has no end time",
        f"{path}:2: span 00000000000000b4 'GET /orders/{{id}}' ends before it starts",
        f"{path}:2: span 'not-an-id' 'GET /orders/{{id}}' has an invalid span id",
    ]


def test_a_span_of_the_wrong_shape_costs_only_that_span(tmp_path: Path) -> None:
    wrong = span(spanId="00000000000000c1", kind=[2], name="bad")
    path = write_lines(tmp_path / "w.jsonl", request(span(), wrong))
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"invalid_span": 1}
    assert stats.problems[0].startswith(f"{path}:1: span 'bad' skipped: Expected")


def test_attacker_text_stays_on_one_line(tmp_path: Path) -> None:
    evil = "x\n/etc/passwd:1: forged problem\u202e"
    path = write_lines(tmp_path / "e.jsonl", request(span(name=evil, endTimeUnixNano="0")))
    _, stats = read(path)
    [line] = stats.problems
    assert "\n" not in line
    assert "\u202e" not in line
    assert line.startswith(f"{path}:1: span {ROOT} 'x\\n/etc/passwd:1: forged")


def test_not_trace_data_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "n.jsonl", request(span()), "{}", "[1, 2]", '"text"')
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"not_trace_data": 3}
    assert stats.problems[0] == f"{path}:2: not OTLP trace data (no resourceSpans)"


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(request(span())).encode())
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {}


def test_values_nested_too_deeply_skip_only_their_line(tmp_path: Path) -> None:
    depth = 3000  # json.dumps itself cannot write this; attackers can
    deep = '{"arrayValue":{"values":[' * depth + '{"stringValue":"leaf"}' + "]}}" * depth
    marker = '"DEEP"'
    nested = json.dumps(request(span(attributes=[{"key": "deep", "value": "DEEP"}])))
    path = write_lines(
        tmp_path / "deep.jsonl", nested.replace(marker, deep), request(span(traceId="3" * 32))
    )
    traces, stats = read(path)
    assert only_span(traces).trace_id == "3" * 32
    assert sum(stats.skipped.values()) == 1
    assert stats.problems[0].startswith(f"{path}:1: ")


def test_jaeger_and_zipkin_lines_beside_otlp_lines_are_read_each_by_its_shape(
    tmp_path: Path,
) -> None:
    jaeger_span = {
        "traceID": TRACE,
        "spanID": "b1",
        "operationName": "j",
        "startTime": 1,
        "duration": 1,
        "process": {"serviceName": "j"},
    }
    zipkin_span = {"traceId": TRACE, "id": "00000000000000c1", "timestamp": 1, "duration": 1}
    jaeger = {"data": [{"traceID": TRACE, "spans": [jaeger_span], "processes": {}}]}
    path = write_lines(tmp_path / "j.jsonl", request(span()), jaeger, [zipkin_span])
    traces, stats = read(path)
    assert sorted(s.span_id for t in traces for s in t.spans) == sorted(
        [ROOT, "00000000000000b1", "00000000000000c1"]
    )
    assert dict(stats.skipped) == {}


def test_zipkin_v1_first_refuses_the_file(tmp_path: Path) -> None:
    v1 = [{"traceId": "abc", "id": "abc", "binaryAnnotations": []}]
    path = write_lines(tmp_path / "z.jsonl", v1, request(span()))
    traces, stats = read(path)
    assert traces == []
    assert dict(stats.skipped) == {"unsupported_format": 1}
    assert stats.problems[0].startswith(f"{path}: unsupported format: Zipkin v1 JSON (")


def test_unreadable_time_skips_that_span(tmp_path: Path) -> None:
    late = span(spanId="00000000000000c1", startTimeUnixNano="soon", name="bad")
    path = write_lines(tmp_path / "t.jsonl", request(span(), late))
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"invalid_span": 1}
    assert stats.problems == [
        f"{path}:1: span 'bad' skipped: Expected `int`, got `str` - at `$.startTimeUnixNano`"
    ]


def test_wrong_shape_inside_a_wrapped_document_costs_only_that_span(tmp_path: Path) -> None:
    bad = span(spanId="00000000000000c1", startTimeUnixNano=[1], name="bad")
    path = tmp_path / "tempo.json"
    path.write_text(json.dumps({"result": request(span(), bad)}, indent=2))
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"invalid_span": 1}
    assert stats.problems[0].startswith(f"{path}: span 'bad' skipped: Expected")


def test_traces_come_out_while_reading(tmp_path: Path) -> None:
    units = [request(span(traceId=f"{i:032x}")) for i in range(1, 101)]
    path = write_lines(tmp_path / "many.jsonl", *units)
    stats = ReadStats()
    first = next(iter(read_traces([path], stats=stats, idle_spans=1)))
    assert first.trace_id == f"{1:032x}"
    assert stats.spans == 2  # the first trace went out as soon as the second span came


def test_a_number_attribute_that_is_not_a_number_stays_text(tmp_path: Path) -> None:
    attributes = [
        {"key": "masked", "value": {"intValue": "xxxxx"}},
        {"key": "half", "value": {"intValue": "1.5"}},
        {"key": "ratio", "value": {"doubleValue": "n/a"}},
        {"key": "ok", "value": {"intValue": "7"}},
    ]
    path = write_lines(tmp_path / "m.jsonl", request(span(attributes=attributes)))
    traces, stats = read(path)
    assert only_span(traces).attributes == {
        "masked": "xxxxx",
        "half": "1.5",
        "ratio": "n/a",
        "ok": 7,
    }
    assert dict(stats.skipped) == {}


def test_containers_of_the_wrong_shape_count_their_spans(tmp_path: Path) -> None:
    # Issue 13, defect 8: a scopeSpans that is not a list dropped its spans uncounted.
    good = request(span())
    bad = {"resourceSpans": [{"scopeSpans": {"spans": [span(), span(spanId=CHILD)]}}]}
    scalar = {"resourceSpans": [{"scopeSpans": [5, {"spans": "x"}]}]}
    path = write_lines(tmp_path / "w.jsonl", good, bad, scalar)
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"invalid_span": 4}
    assert stats.problems[0] == (f"{path}:2: scopeSpans is dict, not a list: 2 spans in it skipped")
    assert stats.problems[1] == f"{path}:3: a scopeSpans entry is int, not an object"


def test_a_string_that_is_not_utf8_loses_only_its_line(tmp_path: Path) -> None:
    # Found by tests/read/test_fuzz.py: msgspec raises UnicodeDecodeError, which lost the file.
    path = tmp_path / "u.jsonl"
    bad = json.dumps(request(span(traceId="1" * 32))).encode().replace(b"1111", b"\x80\x81", 1)
    path.write_bytes(bad + b"\n" + json.dumps(request(span())).encode() + b"\n")
    traces, stats = read(path)
    assert only_span(traces).span_id == ROOT
    assert dict(stats.skipped) == {"invalid_json_line": 1}
    assert stats.problems[0].startswith(f"{path}:1: invalid JSON: a string is not UTF-8")
