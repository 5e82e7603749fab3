"""OTLP JSON -> span rows: JSON lines and single documents.

Contract: :func:`read_json` takes an open binary stream that starts with JSON and yields
lists of :class:`~latency_ledger.read.values.SpanRow` (a span's fields), one list per
unit (a line, or the whole document). It never raises for bad input: each unit it cannot
use is noted in the stats with its line, and reading goes on with the next one.

Shapes read (unknown fields are ignored everywhere):

- one ``TracesData`` / ``ExportTraceServiceRequest`` per line, as the Collector's file
  exporter and ``opentelemetry-exporter-otlp-json-file`` write; lines of logs, metrics
  or profiles are counted as ``non_trace_line``;
- one document (pretty-printed or not), also wrapped as ``{"result": ...}`` (Jaeger's
  api_v3), ``{"trace": ...}`` or ``{"batches": [ResourceSpans...]}`` (Grafana Tempo), with
  ``instrumentationLibrarySpans`` (OTLP < 0.15) beside ``scopeSpans``.

Decoding uses typed msgspec Structs, the fast path. When a unit decodes as JSON but one of
its spans has a field of the wrong type, the unit is walked again span by span so only the
bad span is skipped. A unit that is Jaeger or Zipkin v2 JSON (``sniff.foreign_format``
looks at the decoded value) goes to ``jaeger`` / ``zipkin``; Zipkin v1 is refused with
one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import msgspec

from latency_ledger.model import AttributeValue, SpanKind
from latency_ledger.read.jaeger import convert_jaeger
from latency_ledger.read.limits import MAX_TIME_NS, WALL_CLOCK_NS, ReadLimits, TimeCheck
from latency_ledger.read.lines import json_units
from latency_ledger.read.sniff import JAEGER, ZIPKIN, foreign_format, refusal
from latency_ledger.read.stats import ReadStats, clip, note, show_path
from latency_ledger.read.values import (
    ERROR_CODES,
    KINDS,
    IdDecoder,
    SpanRow,
    b64_to_hex,
)
from latency_ledger.read.zipkin import convert_zipkin

_EMPTY = msgspec.Raw()
_UNSPECIFIED = SpanKind.UNSPECIFIED
_NO_SERVICE = "unknown_service"
_ZERO_16 = "0" * 16


class _Struct(msgspec.Struct, rename="camel", gc=False):
    """Base of the OTLP JSON shapes: camelCase keys; decoded data has no cycles, so no GC."""


class AnyValue(_Struct):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | None = None  # "42" too: the decoder runs in lax mode
    double_value: float | None = None  # "NaN", "Infinity" too
    array_value: ArrayValue | None = None
    kvlist_value: KeyValueList | None = None
    bytes_value: str | None = None


class ArrayValue(_Struct):
    values: list[AnyValue | None] = []


class KeyValue(_Struct):
    key: str = ""
    value: AnyValue | None = None


class KeyValueList(_Struct):
    values: list[KeyValue] = []


class Resource(_Struct):
    attributes: list[KeyValue] = []


class Status(_Struct):
    code: int | str | None = None


class JsonSpan(_Struct):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    kind: int | str | None = 0
    start_time_unix_nano: int = 0  # int64 as a number or a decimal string (lax mode)
    end_time_unix_nano: int = 0
    attributes: list[KeyValue] = []
    status: Status | None = None


class ScopeSpans(_Struct):
    spans: list[JsonSpan] = []


class ResourceSpans(_Struct):
    resource: Resource | None = None
    scope_spans: list[ScopeSpans] = []
    instrumentation_library_spans: list[ScopeSpans] = []


class TracesData(_Struct):
    """A line or document: ``TracesData`` and its wrappers, plus markers of other data."""

    resource_spans: list[ResourceSpans] | None = None
    batches: list[ResourceSpans] | None = None  # Grafana Tempo
    result: TracesData | None = None  # Jaeger api_v3
    trace: TracesData | None = None  # Tempo api/v2
    # Present only to tell "logs/metrics line" and "Jaeger JSON" from "not trace data";
    # Raw skips the content without building objects.
    resource_logs: msgspec.Raw = _EMPTY
    resource_metrics: msgspec.Raw = _EMPTY
    resource_profiles: msgspec.Raw = _EMPTY
    data: msgspec.Raw = _EMPTY
    trace_id_jaeger: msgspec.Raw = msgspec.field(default=_EMPTY, name="traceID")


# Lax mode (strict=False) turns int64/double given as strings into numbers in C, so the
# hot loop never calls int() on them; a value that is not a number fails the unit and
# sends it down the span-by-span path, which skips only that span.
_DECODER = msgspec.json.Decoder(TracesData, strict=False)
_BYTE_AT = re.compile(r"\(byte (\d+)\)")


def _value(v: AnyValue | None) -> AttributeValue:
    # String values rarely get here (the caller inlines them); ints come next most often.
    if v is None:
        return None
    if v.int_value is not None:
        return v.int_value
    if v.string_value is not None:
        return v.string_value
    if v.bool_value is not None:
        return v.bool_value
    if v.double_value is not None:
        return v.double_value
    if v.array_value is not None:
        return tuple([_value(x) for x in v.array_value.values])
    if v.kvlist_value is not None:
        return tuple([(kv.key, _value(kv.value)) for kv in v.kvlist_value.values])
    if v.bytes_value is not None:
        return b64_to_hex(v.bytes_value)
    return None


def _resource(resource: Resource | None) -> tuple[str, dict[str, AttributeValue]]:
    """A resource's service name and attributes (one dict, shared by its spans)."""
    if resource is None:
        return _NO_SERVICE, {}
    attributes = {kv.key: _value(kv.value) for kv in resource.attributes}
    service = attributes.get("service.name")
    return (service if isinstance(service, str) and service else _NO_SERVICE), attributes


def _resource_spans(td: TracesData) -> list[ResourceSpans] | None:
    if td.resource_spans is not None:
        return td.resource_spans
    if td.batches is not None:
        return td.batches
    inner = td.result if td.result is not None else td.trace
    return None if inner is None else _resource_spans(inner)


def convert_spans(
    groups: Sequence[ResourceSpans],
    place: str,
    stats: ReadStats,
    ids: IdDecoder,
    times: TimeCheck,
) -> list[SpanRow]:
    """Decoded resource spans -> span rows; unusable spans are noted and left out.

    The hot loop of the whole analysis: hex ids (what exporters write) pass with C-level
    checks or a cache hit, string attributes without a function call.
    """
    out: list[SpanRow] = []
    append = out.append
    make = SpanRow
    fromhex = bytes.fromhex
    traces_get = ids.traces.get
    parents_get = ids.parents.get
    kinds_get = KINDS.get
    value = _value
    floor = times.floor
    max_span = times.max_span_ns
    for rs in groups:
        service, resource = _resource(rs.resource)
        for scopes in (rs.scope_spans, rs.instrumentation_library_spans):
            for scope in scopes:
                for s in scope.spans:
                    # Trace and parent ids repeat: a dict hit. Span ids do not: bytes.fromhex
                    # is the cheapest strict hex check (str.strip(hexdigits) costs 3x).
                    raw = s.trace_id
                    tid = traces_get(raw)
                    if tid is None:
                        tid = ids.trace(raw)
                    raw = s.span_id
                    try:
                        if len(raw) == 16 and len(fromhex(raw)) == 8 and raw != _ZERO_16:
                            sid: str | None = raw.lower()
                        else:
                            sid = ids.span(raw)
                    except ValueError:
                        sid = ids.span(raw)
                    pid: str | None = s.parent_span_id
                    if pid:
                        pid = parents_get(pid) or ids.parent(pid)
                    start = s.start_time_unix_nano
                    end = s.end_time_unix_nano
                    if tid is None or sid is None or pid is None:
                        _bad_span(s, tid, sid, pid, place, stats)
                        continue
                    if start < floor or end < start or end - start > max_span or end > MAX_TIME_NS:
                        problem = times.problem(start, end)
                        floor = times.floor
                        if problem is not None:
                            who = f"span {sid} {clip(s.name)}"
                            note(stats, problem[0], f"{place}: {who} {problem[1]}")
                            continue
                    elif floor < WALL_CLOCK_NS <= start:
                        times.accepted(start)
                        floor = times.floor
                    status = s.status
                    append(
                        make(
                            tid,
                            sid,
                            pid,
                            s.name,
                            kinds_get(s.kind, _UNSPECIFIED),
                            start,
                            end,
                            status is not None and status.code in ERROR_CODES,
                            {
                                kv.key: text
                                if (v := kv.value) is not None
                                and (text := v.string_value) is not None
                                else value(v)
                                for kv in s.attributes
                            },
                            service,
                            resource,
                        )
                    )
    return out


def _bad_span(
    s: JsonSpan,
    tid: str | None,
    sid: str | None,
    pid: str | None,
    place: str,
    stats: ReadStats,
) -> None:
    who = f"span {clip(s.span_id) if sid is None else sid} {clip(s.name)}"
    if tid is None:
        note(stats, "invalid_id", f"{place}: {who} has an invalid trace id {clip(s.trace_id)}")
    elif sid is None:
        note(stats, "invalid_id", f"{place}: {who} has an invalid span id")
    else:
        note(stats, "invalid_id", f"{place}: {who} has an invalid parent id")


class _Refused(Exception):
    """The file is a format we recognize but do not read; stop reading it."""


class _JsonReader:
    """One JSON file's state: where we are, and whether a unit has been seen yet."""

    def __init__(self, path: object, stats: ReadStats, ids: IdDecoder, limits: ReadLimits) -> None:
        self.where = show_path(path)
        self.stats = stats
        self.ids = ids
        self.times = TimeCheck(limits)
        self.units = 0
        self.non_trace = 0

    def unit(self, data: bytes, line: int | None) -> list[SpanRow]:
        """Decode one line (``line`` set) or a whole document; note what cannot be used."""
        self.units += 1
        place = self.where if line is None else f"{self.where}:{line}"
        try:
            return self._unit(data, line, place)
        except RecursionError:
            note(self.stats, "not_trace_data", f"{place}: values nested too deeply, skipped")
            return []
        except UnicodeDecodeError:  # msgspec's error for a string that is not UTF-8
            try:
                data.decode()
                at = len(data)
            except UnicodeDecodeError as exc:
                at = exc.start
            self._invalid_json(data, line, f"a string is not UTF-8 (byte {at})")
            return []

    def _unit(self, data: bytes, line: int | None, place: str) -> list[SpanRow]:
        try:
            td = _DECODER.decode(data)
        except msgspec.ValidationError as exc:
            return self._lenient(data, place, str(exc))
        except msgspec.DecodeError as exc:
            self._invalid_json(data, line, str(exc))
            return []
        groups = _resource_spans(td)
        if groups is not None:
            return convert_spans(groups, place, self.stats, self.ids, self.times)
        if len(td.resource_logs) or len(td.resource_metrics) or len(td.resource_profiles):
            self.non_trace += 1
            self.stats.skipped["non_trace_line"] += 1
            return []
        if len(td.data) or len(td.trace_id_jaeger) or td.result is not None:
            foreign = self._foreign(msgspec.json.decode(data), place)
            if foreign is not None:
                return foreign
        note(self.stats, "not_trace_data", f"{place}: not OTLP trace data (no resourceSpans)")
        return []

    def _invalid_json(self, data: bytes, line: int | None, message: str) -> None:
        if line is not None:
            note(self.stats, "invalid_json_line", f"{self.where}:{line}: invalid JSON: {message}")
            return
        # A document: name the line holding the byte msgspec stopped at.
        found = _BYTE_AT.search(message)
        at = int(found.group(1)) if found else len(data)
        line = data.count(b"\n", 0, at) + 1
        note(self.stats, "invalid_json", f"{self.where}:{line}: invalid JSON: {message}")

    def _foreign(self, obj: object, place: str) -> list[SpanRow] | None:
        """Jaeger or Zipkin v2 JSON read natively; Zipkin v1 refused; None: neither."""
        name = foreign_format(obj)
        if name == JAEGER:
            return convert_jaeger(obj, place, self.stats, self.ids, self.times)
        if name == ZIPKIN:
            return convert_zipkin(obj, place, self.stats, self.ids, self.times)
        if name is None:
            return None
        if self.units == 1:
            raise _Refused(refusal(self.where, name))
        note(self.stats, "unsupported_format", refusal(place, name))
        return []

    def _lenient(self, data: bytes, place: str, message: str) -> list[SpanRow]:
        """Valid JSON of the wrong shape somewhere: keep what can be used, span by span."""
        try:
            obj: Any = msgspec.json.decode(data)
        except (msgspec.DecodeError, RecursionError):
            note(self.stats, "not_trace_data", f"{place}: not OTLP trace data: {message}")
            return []
        foreign = self._foreign(obj, place)
        if foreign is not None:
            return foreign
        groups = _lenient_groups(obj)
        if groups is None:
            note(self.stats, "not_trace_data", f"{place}: not OTLP trace data: {message}")
            return []
        kept: list[ResourceSpans] = []
        for raw_rs in groups:
            if not isinstance(raw_rs, dict):
                note(
                    self.stats, "not_trace_data", f"{place}: a resourceSpans entry is not an object"
                )
                continue
            try:
                resource = msgspec.convert(raw_rs.get("resource"), Resource | None, strict=False)
            except msgspec.ValidationError:
                resource = None
            scopes = []
            for key in ("scopeSpans", "instrumentationLibrarySpans"):
                for raw_scope in self._list(raw_rs.get(key), key, place):
                    if not isinstance(raw_scope, dict):
                        what = f"a {key} entry is {type(raw_scope).__name__}, not an object"
                        note(self.stats, "invalid_span", f"{place}: {what}")
                        continue
                    spans = self._list(raw_scope.get("spans"), "spans", place)
                    scopes.append(ScopeSpans(spans=self._spans(spans, place)))
            kept.append(ResourceSpans(resource=resource, scope_spans=scopes))
        return convert_spans(kept, place, self.stats, self.ids, self.times)

    def _list(self, value: object, key: str, place: str) -> list[Any]:
        """``value`` if it is a list; otherwise note the spans it holds as skipped."""
        if value is None or isinstance(value, list):
            return value or []
        inner = value.get("spans") if isinstance(value, dict) else None
        lost = len(inner) if isinstance(inner, list) else 0
        note(
            self.stats,
            "invalid_span",
            f"{place}: {key} is {type(value).__name__}, not a list: {lost} spans in it skipped",
            count=max(1, lost),
        )
        return []

    def _spans(self, raw_spans: list[Any], place: str) -> list[JsonSpan]:
        good = []
        for raw in raw_spans:
            try:
                good.append(msgspec.convert(raw, JsonSpan, strict=False))
                continue
            except msgspec.ValidationError as exc:
                error = exc
            try:
                # A number attribute that is not a number (e.g. a masked "xxxxx") should
                # not cost the span: keep it as the text it is.
                good.append(msgspec.convert(_loosen(raw), JsonSpan, strict=False))
            except msgspec.ValidationError:
                name = raw.get("name") if isinstance(raw, dict) else None
                note(self.stats, "invalid_span", f"{place}: span {clip(name)} skipped: {error}")
        return good


def _loosen(raw: object) -> object:
    """A span dict whose unparsable int/double attribute values are strings instead."""
    if not isinstance(raw, dict) or not isinstance(raw.get("attributes"), list):
        return raw
    attributes = []
    for kv in raw["attributes"]:
        value = kv.get("value") if isinstance(kv, dict) else None
        if isinstance(value, dict):
            for key, kind in (("intValue", int), ("doubleValue", float)):
                number = value.get(key)
                if isinstance(number, str):
                    try:
                        msgspec.convert(number, kind, strict=False)
                    except msgspec.ValidationError:
                        kv = kv | {"value": {"stringValue": number}}
        attributes.append(kv)
    return raw | {"attributes": attributes}


def _lenient_groups(obj: object) -> list[Any] | None:
    while isinstance(obj, dict):
        for key in ("resourceSpans", "batches"):
            if isinstance(obj.get(key), list):
                return list(obj[key])
        obj = obj.get("result", obj.get("trace"))
    return None


JsonReaderFactory = Callable[[object, ReadStats, IdDecoder, ReadLimits], "_JsonReader"]


def read_json(
    stream: IO[bytes],
    path: object,
    stats: ReadStats,
    ids: IdDecoder,
    limits: ReadLimits,
    json_reader: JsonReaderFactory | None = None,
) -> Iterator[list[SpanRow]]:
    """Yield the spans of each unit of a JSON file (JSON lines or one document);
    ``json_reader`` makes the reader (default: this module's; ``fast`` has another)."""
    reader = (json_reader or _JsonReader)(path, stats, ids, limits)
    try:
        for line, data in json_units(stream, reader.where, stats, limits):
            spans = reader.unit(data, line)
            if spans:
                yield spans
    except _Refused as exc:
        note(stats, "unsupported_format", str(exc))
    if reader.non_trace:
        note(
            stats,
            "non_trace_line",
            f"{reader.where}: skipped {reader.non_trace} lines of logs/metrics (not traces)",
            count=0,
        )
