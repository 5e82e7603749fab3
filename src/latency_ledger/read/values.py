"""OTLP scalars -> model values, shared by the JSON and protobuf readers.

Contract: ids become lowercase hex (trace 32, span 16 characters) from hex of any case or
base64 (what the protobuf JSON mapping emits); a parent id of all zeros means "no
parent". Kinds and status codes come as ints or ``SPAN_KIND_*`` / ``STATUS_CODE_*``
names. Nothing here raises for bad input: unusable values come back as ``None``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import types
from collections.abc import Callable

import msgspec

from latency_ledger.model import Attributes, AttributeValue, Span, SpanKind

_HEX = "0123456789abcdef"
_CACHE_LIMIT = 1 << 16
_URLSAFE = str.maketrans("-_", "+/")

# Keyed by both spellings, so one lookup decodes either; unknown kinds become UNSPECIFIED.
KINDS: dict[object, SpanKind] = {int(k): k for k in SpanKind} | {
    f"SPAN_KIND_{k.name}": k for k in SpanKind
}

ERROR_CODES: frozenset[object] = frozenset({2, "STATUS_CODE_ERROR"})

_NAMED_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _decode_id(raw: str, nbytes: int) -> str | None:
    # Hex first when the length fits: a 32-character string cannot be base64 of 16 bytes.
    if len(raw) == 2 * nbytes:
        low = raw.lower()
        if not low.strip(_HEX):
            return low
    elif nbytes == 16 and len(raw) == 16:
        # A 64-bit trace id (Zipkin/Jaeger origin); the Collector left-pads it the same way.
        low = raw.lower()
        if not low.strip(_HEX):
            return "0" * 16 + low
    try:
        data = base64.b64decode(raw.translate(_URLSAFE) + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) != nbytes:
        return None
    return data.hex()


class IdDecoder:
    """Normalize trace and span ids, caching the answers (ids repeat across spans).

    ``trace`` / ``span`` return ``None`` for an unusable id; ``parent`` returns ``""`` for
    an empty or all-zero id and ``None`` for an unusable one.
    """

    __slots__ = ("_parents", "_spans", "_traces")

    def __init__(self) -> None:
        self._traces: dict[str, str | None] = {}
        self._spans: dict[str, str | None] = {}
        self._parents: dict[str, str | None] = {"": ""}

    def trace(self, raw: str) -> str | None:
        cache = self._traces
        try:
            return cache[raw]
        except KeyError:
            pass
        value = _decode_id(raw, 16)
        if value is not None and not value.strip("0"):
            value = None
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[raw] = value
        return value

    def span(self, raw: str) -> str | None:
        cache = self._spans
        try:
            return cache[raw]
        except KeyError:
            pass
        value = _decode_id(raw, 8)
        if value is not None and not value.strip("0"):
            value = None
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[raw] = value
        return value

    def parent(self, raw: str) -> str | None:
        cache = self._parents
        try:
            return cache[raw]
        except KeyError:
            pass
        value = _decode_id(raw, 8)
        if value is not None and not value.strip("0"):
            value = ""
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
            cache[""] = ""
        cache[raw] = value
        return value

    def bytes_id(self, raw: bytes, nbytes: int) -> str | None:
        """A protobuf ``bytes`` id; empty means "none" (the caller decides if that is ok)."""
        if len(raw) != nbytes:
            return "" if not raw else None
        return raw.hex()


def to_int(value: int | str | float | None) -> int | None:
    """An int64 given as a number or a decimal string; ``None`` if it is neither."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def to_float(value: float | int | str | None) -> float | None:
    """A double given as a number, a numeric string or NaN/Infinity names."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        named = _NAMED_FLOATS.get(value)
        if named is not None:
            return named
        try:
            return float(value)
        except ValueError:
            return None
    return None


def b64_to_hex(value: str) -> str:
    """A protobuf-JSON ``bytesValue`` as hex; text that is not base64 is kept as given."""
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True).hex()
    except (binascii.Error, ValueError):
        return value


SpanMaker = Callable[[str, str, str, str, SpanKind, int, int, bool, Attributes, str], Span]

_SPAN_FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "is_error",
    "attributes",
    "service",
)


def _build_span_maker() -> SpanMaker:
    """A positional constructor for :class:`Span`, ~2.5x faster than its ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__`` with keyword
    arguments (~2 us per span here, more than decoding it); with slots, the same store
    is one member-descriptor call. Used only when ``Span`` is exactly the slotted record
    this was written for; otherwise it falls back to the real constructor.
    """
    setters = []
    if tuple(f.name for f in dataclasses.fields(Span)) == _SPAN_FIELDS and not hasattr(
        Span, "__post_init__"
    ):
        for name in _SPAN_FIELDS:
            slot = Span.__dict__.get(name)
            if type(slot) is not types.MemberDescriptorType:
                break
            setters.append(slot.__set__)
    if len(setters) != len(_SPAN_FIELDS):

        def make_checked(
            trace_id: str,
            span_id: str,
            parent_span_id: str,
            name: str,
            kind: SpanKind,
            start_ns: int,
            end_ns: int,
            is_error: bool,
            attributes: Attributes,
            service: str,
        ) -> Span:
            return Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent_span_id,
                name=name,
                kind=kind,
                start_ns=start_ns,
                end_ns=end_ns,
                is_error=is_error,
                attributes=attributes,
                service=service,
            )

        return make_checked

    (
        set_tid,
        set_sid,
        set_pid,
        set_name,
        set_kind,
        set_start,
        set_end,
        set_err,
        set_attrs,
        set_svc,
    ) = setters
    new = object.__new__

    def make_fast(
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        name: str,
        kind: SpanKind,
        start_ns: int,
        end_ns: int,
        is_error: bool,
        attributes: Attributes,
        service: str,
    ) -> Span:
        span = new(Span)
        set_tid(span, trace_id)
        set_sid(span, span_id)
        set_pid(span, parent_span_id)
        set_name(span, name)
        set_kind(span, kind)
        set_start(span, start_ns)
        set_end(span, end_ns)
        set_err(span, is_error)
        set_attrs(span, attributes)
        set_svc(span, service)
        return span

    return make_fast


make_span: SpanMaker = _build_span_maker()


class SpanRow(msgspec.Struct, gc=False):
    """A decoded span waiting for its trace to complete: :class:`Span`'s fields.

    Why not the ``Span`` itself: the assembler holds up to ``idle_spans`` spans, and the
    garbage collector walks every tracked object on each full collection; with 200,000
    ``Span`` records buffered that was half the reading time. A ``gc=False`` struct (no
    cycles are possible: it holds strings, numbers and a dict of plain values) is never
    walked. Spans are made when the trace is let out and die young.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    is_error: bool
    attributes: dict[str, AttributeValue]
    service: str


def to_spans(rows: list[SpanRow]) -> tuple[Span, ...]:
    make = make_span
    return tuple(
        [
            make(
                r.trace_id,
                r.span_id,
                r.parent_span_id,
                r.name,
                r.kind,
                r.start_ns,
                r.end_ns,
                r.is_error,
                r.attributes,
                r.service,
            )
            for r in rows
        ]
    )
