"""Id, number and record normalization shared by the decoders."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from latency_ledger.model import Span, SpanKind
from latency_ledger.read.values import (
    KINDS,
    IdDecoder,
    SpanRow,
    b64_to_hex,
    make_span,
    to_spans,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def b64(hex_id: str, pad: bool = True) -> str:
    text = base64.b64encode(bytes.fromhex(hex_id)).decode()
    return text if pad else text.rstrip("=")


@pytest.mark.parametrize(
    "raw", [TRACE, TRACE.upper(), b64(TRACE), b64(TRACE, pad=False), b64(TRACE).replace("/", "_")]
)
def test_trace_ids(raw: str) -> None:
    assert IdDecoder().trace(raw) == TRACE


def test_trace_id_edge_cases() -> None:
    ids = IdDecoder()
    assert ids.trace("a3ce929d0e0e4736") == "0000000000000000a3ce929d0e0e4736"  # 64-bit
    assert ids.trace("0" * 32) is None  # all zeros is invalid in OTLP
    assert ids.trace("") is None
    assert ids.trace("xyz") is None
    assert ids.trace("g" * 32) is None
    assert ids.trace(b64(SPAN)) is None  # 8 bytes is not a trace id


@pytest.mark.parametrize("raw", [SPAN, SPAN.upper(), b64(SPAN)])
def test_span_and_parent_ids(raw: str) -> None:
    ids = IdDecoder()
    assert ids.span(raw) == SPAN
    assert ids.parent(raw) == SPAN


def test_parent_none_spellings() -> None:
    ids = IdDecoder()
    assert ids.parent("") == ""
    assert ids.parent("0" * 16) == ""
    assert ids.parent("AAAAAAAAAAA=") == ""  # base64 of 8 zero bytes
    assert ids.parent("zz") is None
    assert ids.span("0" * 16) is None


def test_kinds_table() -> None:
    assert KINDS[2] is SpanKind.SERVER
    assert KINDS["SPAN_KIND_CONSUMER"] is SpanKind.CONSUMER
    assert KINDS.get("SERVER") is None  # only the enum names the JSON mapping uses


def test_bytes_value() -> None:
    assert b64_to_hex("Af8=") == "01ff"
    assert b64_to_hex("not base64!") == "not base64!"


def test_make_span_builds_the_same_record_as_the_constructor() -> None:
    attrs = {"k": "v"}
    resource = {"service.name": "svc", "telemetry.sdk.language": "go"}
    made = make_span(TRACE, SPAN, "", "n", SpanKind.CLIENT, 1, 3, True, attrs, "svc", resource)
    built = Span(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id="",
        name="n",
        kind=SpanKind.CLIENT,
        start_ns=1,
        end_ns=3,
        is_error=True,
        attributes=attrs,
        service="svc",
        resource=resource,
    )
    assert made == built
    assert repr(made) == repr(built)
    assert made.duration_ns == 2
    assert type(made) is Span
    with pytest.raises(AttributeError):
        made.name = "changed"  # type: ignore[misc]
    assert to_spans(
        [SpanRow(TRACE, SPAN, "", "n", SpanKind.CLIENT, 1, 3, True, attrs, "svc", resource)]
    ) == (built,)


def test_span_row_fields_are_span_fields_in_order() -> None:
    assert SpanRow.__struct_fields__ == tuple(f.name for f in dataclasses.fields(Span))
