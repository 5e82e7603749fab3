"""OTLP scalars -> model values, and the span records, shared by the decoders.

Contract: ids become lowercase hex (trace 32, span 16 characters) from hex of any case or
base64 (what the protobuf JSON mapping emits); a parent id of all zeros means "no
parent". Kinds and status codes come as ints or ``SPAN_KIND_*`` / ``STATUS_CODE_*``
names. Nothing here raises for bad input: unusable values come back as ``None``.

Decoders produce :class:`SpanRow` (invisible to the garbage collector while buffered);
:func:`to_spans` turns a finished trace's rows into ``model.Span`` records.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable
from typing import cast

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
    """Normalize trace and span ids; trace and parent ids are cached (they repeat).

    ``trace`` / ``span`` return ``None`` for an unusable id; ``parent`` returns ``""`` for
    an empty or all-zero id and ``None`` for an unusable one. The hot loop reads the
    ``traces`` / ``parents`` caches directly and calls the methods only on a miss; a
    cached ``None`` (or ``""`` parent) also falls through to the method, which answers
    from the cache.
    """

    __slots__ = ("parents", "traces")

    def __init__(self) -> None:
        self.traces: dict[str, str | None] = {}
        self.parents: dict[str, str | None] = {"": ""}

    def trace(self, raw: str) -> str | None:
        cache = self.traces
        if raw in cache:
            return cache[raw]
        value = _decode_id(raw, 16)
        if value is not None and not value.strip("0"):
            value = None
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[raw] = value
        return value

    def span(self, raw: str) -> str | None:
        value = _decode_id(raw, 8)
        if value is not None and not value.strip("0"):
            return None
        return value

    def parent(self, raw: str) -> str | None:
        cache = self.parents
        if raw in cache:
            return cache[raw]
        value = _decode_id(raw, 8)
        if value is not None and not value.strip("0"):
            value = ""
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
            cache[""] = ""
        cache[raw] = value
        return value


def b64_to_hex(value: str) -> str:
    """A protobuf-JSON ``bytesValue`` as hex; text that is not base64 is kept as given."""
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True).hex()
    except (binascii.Error, ValueError):
        return value


SpanMaker = Callable[
    [str, str, str, str, SpanKind, int, int, bool, Attributes, str, Attributes], Span
]

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
    "resource",
)


def _make_checked(
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
    resource: Attributes,
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
        resource=resource,
    )


class _UnfrozenSpan:
    """Same slots as :class:`Span`: filled by plain stores, then it becomes a ``Span``.

    A frozen dataclass stores each field through ``object.__setattr__`` with keyword
    arguments: ~2 us per span here, more than decoding the span. Plain slot stores and
    one ``__class__`` assignment (allowed between classes with identical slot layouts)
    cost ~0.4 us, and the result is an ordinary, frozen ``Span``. Used only after
    :func:`_build_span_maker` checked it against the real constructor.
    """

    __slots__ = _SPAN_FIELDS

    def __init__(
        self,
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
        resource: Attributes,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.is_error = is_error
        self.attributes = attributes
        self.service = service
        self.resource = resource
        self.__class__ = Span  # type: ignore[assignment]


def _build_span_maker() -> SpanMaker:
    """The fast maker if ``Span`` is still the slotted record it was written for."""
    probe = (
        "1" * 32,
        "2" * 16,
        "",
        "n",
        SpanKind.SERVER,
        1,
        2,
        True,
        {"k": 1},
        "svc",
        {"service.name": "svc"},
    )
    if tuple(f.name for f in dataclasses.fields(Span)) != _SPAN_FIELDS or hasattr(
        Span, "__post_init__"
    ):
        return _make_checked
    try:
        fast: object = _UnfrozenSpan(*probe)
    except TypeError:  # slot layouts differ: __class__ assignment refused
        return _make_checked
    if type(fast) is not Span or fast != _make_checked(*probe):
        return _make_checked
    return cast(SpanMaker, _UnfrozenSpan)


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
    resource: dict[str, AttributeValue] = {}  # one dict shared by the spans of a resource

    @property
    def duration_ns(self) -> int:  # as Span's: a row can stand in for it (read.assemble)
        return self.end_ns - self.start_ns


def to_spans(rows: list[SpanRow]) -> tuple[Span, ...]:
    """Rows -> ``Span`` records (SpanRow's fields are in ``Span``'s order)."""
    make = make_span
    astuple = msgspec.structs.astuple
    return tuple([make(*astuple(r)) for r in rows])
