"""The fast reader: OTLP JSON lines decoded once per distinct attribute set.

Contract: :class:`FastJsonReader` reads a JSON-lines unit to exactly the span rows, the
counters and the problem lines ``otlp_json._JsonReader`` produces for it (it is that
reader, with a faster path for the common line), and :func:`read_rows` yields every
input's span rows like ``read_traces`` does before assembly. ``share=(k, n)`` keeps only
the spans whose trace is worker ``k``'s of ``n`` (:func:`owner`), so ``n`` processes
reading the same input split it by trace, each trace whole in one of them.

Why it is faster. A line is decoded into minimal Structs whose span attributes and
resources stay raw JSON bytes (``msgspec.Raw``: C skips them without building anything).
Exporters repeat attribute sets (the same statement, the same peer) and every span of a
resource shares its resource, so the raw bytes key a cache of the decoded dicts: a
repeated set costs one dict lookup and yields the SAME dict object, which lets the
ledger classify each distinct (attributes, kind, name, service) once
(``ledger.Classifier``). Anything out of the ordinary in a line (a wrapper other than
``resourceSpans``, a wrong type, an unusable id or time) sends the whole line down the
reference path, so problems are noted exactly as there.

Several workers. Each reads every line; a span of a trace it does not own costs it the
decode and a trace-id check only, once the file's time floor (``limits.TimeCheck``) can
no longer rise: the span's owner checks the rest. So a line with an unusable span may go
the reference way in some workers and not in others; its problems count in the lowest
worker that read it so (each of them can tell which did: :meth:`FastJsonReader._noters`),
the others forget them. Problems get their place (file, line) so the workers' lists
merge in reading order (``parallel.merge_stats``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec

from latency_ledger.model import AttributeValue, SpanKind
from latency_ledger.read.files import DEFAULT_LIMITS, expand_paths, read_file
from latency_ledger.read.limits import MAX_TIME_NS, WALL_CLOCK_NS, ReadLimits
from latency_ledger.read.otlp_json import (
    KeyValue,
    Resource,
    Status,
    _JsonReader,
    _resource,
    _value,
)
from latency_ledger.read.stats import MAX_PROBLEMS, ReadStats
from latency_ledger.read.values import ERROR_CODES, KINDS, IdDecoder, SpanRow

_EMPTY = msgspec.Raw()
_UNSPECIFIED = SpanKind.UNSPECIFIED
_ZERO_16 = "0" * 16
# Distinct attribute sets kept decoded; then the cache starts over. 8192, not 32768:
# the same analysis CPU on 1M generated spans (ids in URLs make most sets distinct),
# 37 MB less peak RSS per process (the raw-JSON keys and their dicts).
_CACHE_LIMIT = 1 << 13


class _Struct(msgspec.Struct, rename="camel", gc=False):
    pass


class _Span(_Struct):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    kind: int | str | None = 0
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    attributes: msgspec.Raw = _EMPTY
    status: Status | None = None


class _Scope(_Struct):
    spans: list[_Span] = []


class _ResourceSpans(_Struct):
    resource: msgspec.Raw = _EMPTY
    scope_spans: list[_Scope] = []
    instrumentation_library_spans: list[_Scope] = []


class _Line(_Struct):
    resource_spans: list[_ResourceSpans] | None = None


_LINE = msgspec.json.Decoder(_Line, strict=False)
_ATTRIBUTES = msgspec.json.Decoder(list[KeyValue], strict=False)
_RESOURCE = msgspec.json.Decoder(Resource | None, strict=False)


class _Irregular(Exception):
    """This line needs the reference path."""


_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: 2**64 / golden ratio, odd
_MASK = (1 << 64) - 1


def trace_hash(trace_id: str) -> int:
    """32 well-mixed bits of a trace id (hex). Ids are not always random in every bit
    (a generator that sets the low bit, X-Ray's leading timestamp), so bits are mixed
    by a multiplication rather than taken as they are."""
    return ((int(trace_id[-16:], 16) * _MIX) & _MASK) >> 32


def owner(trace_id: str, workers: int) -> int:
    """The worker (of ``workers``) that owns a trace."""
    return trace_hash(trace_id) % workers if workers > 1 else 0


class FastJsonReader(_JsonReader):
    """``_JsonReader`` with a fast path for JSON lines; see the module docstring."""

    def __init__(
        self,
        path: object,
        stats: ReadStats,
        ids: IdDecoder,
        limits: ReadLimits,
        *,
        share: tuple[int, int] = (0, 1),
        attributes: dict[bytes, dict[str, AttributeValue]] | None = None,
        resources: dict[bytes, tuple[str, dict[str, AttributeValue]]] | None = None,
        file_index: int = 0,
    ) -> None:
        super().__init__(path, stats, ids, limits)
        self.share = share
        self.attributes = {} if attributes is None else attributes
        self.resources = {} if resources is None else resources
        self.fallback_lines = 0  # lines read by the reference path
        self.owners: dict[str, bool] = {}  # trace id -> is it this worker's (a cache)
        self.file_index = file_index  # where the file is in the input, for problem places
        self.line = 0  # the line being read
        # a span before 2000 was accepted while the time floor was low (read.ranges)
        self.early = False

    def unit(self, data: bytes, line: int | None) -> list[SpanRow]:
        stats = self.stats
        mark_places(stats, (self.file_index, self.line, 1))  # noted between units
        if line is not None:
            self.line = line
        floor = self.times.floor
        if line is not None:
            try:
                rows = self._fast(data)
            except (_Irregular, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                self.times.floor = floor  # as if this line had not been looked at
            else:
                self.units += 1
                return rows
        self.fallback_lines += 1
        mine, workers = self.share
        if workers == 1 or line is None:  # a document: every worker reads it whole
            rows = super().unit(data, line)
            mark_places(stats, (self.file_index, self.line, 0))
            return rows if workers == 1 else [r for r in rows if owner(r.trace_id, workers) == mine]
        # Several workers may read this line the reference way; its problems count once,
        # in the lowest of them (see module docstring).
        noters = self._noters(data, floor)
        keep = mine == (min(noters) if noters is not None else 0)
        skipped, problems, count = Counter(stats.skipped), len(stats.problems), stats.problem_count
        rows = super().unit(data, line)
        mark_places(stats, (self.file_index, line, 0))
        if not keep:
            stats.skipped, stats.problem_count = skipped, count
            del stats.problems[problems:]
            del stats.places[problems:]
        elif mine > 0:
            kept = stats.kept
            kept.skipped.update(stats.skipped - skipped)
            kept.count += stats.problem_count - count
            for place, text in zip(stats.places[problems:], stats.problems[problems:], strict=True):
                if len(kept.problems) < MAX_PROBLEMS:
                    kept.problems.append((place, text))
        return [r for r in rows if owner(r.trace_id, workers) == mine]

    def _noters(self, data: bytes, floor: int) -> set[int] | None:
        """The workers that read this line the reference way (None: every worker): the
        owners of its irregular spans, or all when every worker meets the problem (the
        line, a resource or a trace id is unusable, or a span's ids or times are while
        the time floor may still rise: until then every worker checks every span)."""
        try:
            groups = _LINE.decode(data).resource_spans
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        if groups is None:
            return None
        workers = self.share[1]
        ids = self.ids
        max_span = self.times.max_span_ns
        found: set[int] = set()
        for rs in groups:
            try:
                self._resource(rs.resource)
            except (_Irregular, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                return None
            for scopes in (rs.scope_spans, rs.instrumentation_library_spans):
                for scope in scopes:
                    for s in scope.spans:
                        tid = ids.trace(s.trace_id)
                        if tid is None:
                            return None
                        start, end = s.start_time_unix_nano, s.end_time_unix_nano
                        pid = ids.parent(s.parent_span_id) if s.parent_span_id else ""
                        if (
                            ids.span(s.span_id) is None
                            or pid is None
                            or start < floor
                            or end < start
                            or end - start > max_span
                            or end > MAX_TIME_NS
                        ):
                            if floor < WALL_CLOCK_NS:
                                return None
                            found.add(owner(tid, workers))
                            continue
                        if start >= WALL_CLOCK_NS:
                            floor = WALL_CLOCK_NS
                        key = bytes(s.attributes)
                        if key not in self.attributes:
                            try:
                                self._attributes(key)
                            except (
                                _Irregular,
                                msgspec.DecodeError,
                                UnicodeDecodeError,
                                RecursionError,
                            ):
                                found.add(owner(tid, workers))
        return found

    def _fast(self, data: bytes) -> list[SpanRow]:
        """The line's rows, or ``_Irregular`` before anything was noted."""
        groups = _LINE.decode(data).resource_spans
        if groups is None:
            raise _Irregular
        out: list[SpanRow] = []
        append = out.append
        ids = self.ids
        traces_get = ids.traces.get
        parents_get = ids.parents.get
        kinds_get = KINDS.get
        fromhex = bytes.fromhex
        times = self.times
        floor = times.floor
        max_span = times.max_span_ns
        mine, workers = self.share
        shared = workers > 1
        owners = self.owners
        owners_get = owners.get
        # Until the time floor is settled (a span from 2000 on was read: read.ranges),
        # every span may move it.
        unsettled = floor < WALL_CLOCK_NS
        cache = self.attributes
        cache_get = cache.get
        make = SpanRow
        for rs in groups:
            service, resource = self._resource(rs.resource)
            for scopes in (rs.scope_spans, rs.instrumentation_library_spans):
                for scope in scopes:
                    spans = scope.spans
                    plain_ids = _plain_span_ids([s.span_id for s in spans])
                    for s in spans:
                        raw = s.trace_id
                        tid = traces_get(raw)
                        if tid is None:
                            tid = ids.trace(raw)
                            if tid is None:
                                raise _Irregular
                        if shared:
                            mine_too = owners_get(tid)
                            if mine_too is None:
                                mine_too = owners[tid] = owner(tid, workers) == mine
                                if len(owners) > _CACHE_LIMIT:
                                    owners.clear()
                            # Once the time floor cannot rise any more, another worker's
                            # span changes nothing here: its owner checks it.
                            if not mine_too and not unsettled:
                                continue
                        raw = s.span_id
                        if plain_ids:
                            sid: str | None = raw
                        else:
                            try:
                                if len(raw) == 16 and len(fromhex(raw)) == 8 and raw != _ZERO_16:
                                    sid = raw.lower()
                                else:
                                    sid = ids.span(raw)
                            except ValueError:
                                sid = ids.span(raw)
                        pid: str | None = s.parent_span_id
                        if pid:
                            pid = parents_get(pid) or ids.parent(pid)
                        if sid is None or pid is None:
                            raise _Irregular
                        start = s.start_time_unix_nano
                        end = s.end_time_unix_nano
                        if (
                            start < floor
                            or end < start
                            or end - start > max_span
                            or end > MAX_TIME_NS
                        ):
                            raise _Irregular
                        if unsettled:
                            if start >= WALL_CLOCK_NS:
                                times.accepted(start)
                                floor = times.floor
                                unsettled = floor < WALL_CLOCK_NS
                            else:
                                self.early = True
                        # Until then, every worker checks every span: the time check's
                        # state must be every worker's.
                        if shared and not mine_too:
                            continue
                        key = bytes(s.attributes)
                        attrs = cache_get(key)
                        if attrs is None:
                            attrs = self._attributes(key)
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
                                attrs,
                                service,
                                resource,
                            )
                        )
        return out

    def _attributes(self, key: bytes) -> dict[str, AttributeValue]:
        try:
            pairs = _ATTRIBUTES.decode(key) if key else []
        except msgspec.ValidationError as exc:
            raise _Irregular from exc
        attrs = {kv.key: _value(kv.value) for kv in pairs}
        if len(self.attributes) >= _CACHE_LIMIT:
            self.attributes.clear()
        self.attributes[key] = attrs
        return attrs

    def _resource(self, raw: msgspec.Raw) -> tuple[str, dict[str, AttributeValue]]:
        key = bytes(raw)
        found = self.resources.get(key)
        if found is None:
            try:
                found = _resource(_RESOURCE.decode(key) if key else None)
            except msgspec.ValidationError as exc:
                raise _Irregular from exc
            if len(self.resources) >= _CACHE_LIMIT:
                self.resources.clear()
            self.resources[key] = found
        return found


def _plain_span_ids(raw: list[str]) -> bool:
    """Whether every one of a scope's span ids is already what ``IdDecoder.span`` makes
    of it: 16 lowercase hex digits, not all zeros. Checked for all of them at once (a
    few passes in C over their concatenation); checking each id alone, as the loop
    does when this says no, was ~1,700 instructions a span."""
    joined = "".join(raw)
    if len(joined) != 16 * len(raw) or (raw and min(map(len, raw)) != 16):
        return False
    try:
        # fromhex skips white space: the length check catches it
        if len(bytes.fromhex(joined)) != 8 * len(raw):
            return False
    except ValueError:
        return False
    return joined.lower() == joined and _ZERO_16 not in raw


def mark_places(stats: ReadStats, place: tuple[int, int, int]) -> None:
    """Give the problems noted since the last mark their place ``(file, line, phase)``
    (phase 0: while reading that line, 1: after it), so the problems of several workers
    merge in reading order."""
    for seq in range(len(stats.places), len(stats.problems)):
        stats.places.append((*place, seq))


def read_rows(
    paths: Sequence[str | Path],
    *,
    stats: ReadStats,
    on_bytes: Callable[[int], None] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    share: tuple[int, int] = (0, 1),
) -> Iterator[list[SpanRow]]:
    """Every input's span rows in reading order (worker ``share[0]``'s of ``share[1]``)."""
    ids = IdDecoder()
    attributes: dict[bytes, dict[str, AttributeValue]] = {}
    resources: dict[bytes, tuple[str, dict[str, AttributeValue]]] = {}
    mine, workers = share

    readers: list[FastJsonReader] = []  # made for the file being read (JSON files only)
    file_index = [0]

    def json_reader(
        path: object, stats: ReadStats, ids: IdDecoder, limits: ReadLimits
    ) -> FastJsonReader:
        reader = FastJsonReader(
            path,
            stats,
            ids,
            limits,
            share=share,
            attributes=attributes,
            resources=resources,
            file_index=file_index[0],
        )
        readers.append(reader)
        return reader

    for index, path in enumerate(expand_paths(paths)):
        readers.clear()
        file_index[0] = index
        for rows in read_file(path, stats, ids, on_bytes, limits, json_reader):
            if workers > 1 and not readers:  # protobuf: not filtered by the reader
                rows = [r for r in rows if owner(r.trace_id, workers) == mine]
            if rows:
                yield rows
        stats.fallback_units += sum(r.fallback_lines for r in readers)
        mark_places(stats, (index, readers[0].line if readers else 0, 1))
