"""What the Jaeger and Zipkin readers share: ids, numbers and checked span rows.

Contract: :class:`RowMaker` turns one decoded span's fields (raw ids as the file gives
them, times in ns) into a :class:`~latency_ledger.read.values.SpanRow`, exactly as the
OTLP readers would for the same span, or notes why it cannot (``invalid_id``,
``span_without_start_time``, ``span_without_end_time``, or the file's
:class:`~latency_ledger.read.limits.TimeCheck` verdict: ``end_before_start``...) and
returns None. Resources with equal attributes share one dict, as OTLP's do. Nothing
here raises for bad input: trace content is attacker-controlled, so every value is
type-checked and a wrong type counts as absent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from latency_ledger.model import AttributeValue, SpanKind
from latency_ledger.read.limits import TimeCheck
from latency_ledger.read.stats import ReadStats, clip, note
from latency_ledger.read.values import IdDecoder, SpanRow

_HEX = frozenset("0123456789abcdefABCDEF")
NO_SERVICE = "unknown_service"
# Span kinds as Jaeger's ``span.kind`` tag and Zipkin's ``kind`` field spell them.
KIND_NAMES: Mapping[str, SpanKind] = {
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
    "internal": SpanKind.INTERNAL,
}


def pad_hex(raw: object, nbytes: int) -> str:
    """A hex id with its leading zeros restored (Jaeger drops them: ``ec2b4e0bcea566d``).

    A trace id of at most 16 digits is a 64-bit id, padded to 16 (the id decoder widens
    it to 128 bits the way the Collector does); anything that is not short hex comes
    back as given for the decoder to judge (base64, or invalid).
    """
    if not isinstance(raw, str) or not raw:
        return ""
    if len(raw) < 2 * nbytes and _HEX.issuperset(raw):
        width = 16 if nbytes == 16 and len(raw) <= 16 else 2 * nbytes
        return raw.zfill(width)
    return raw


def as_int(value: object) -> int | None:
    """An integer from an int, a finite float or a decimal string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and 0 < len(value) <= 24:
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            return int(number) if math.isfinite(number) else None
    return None


def us_to_ns(value: object) -> int | None:
    """Microseconds (Jaeger's and Zipkin's unit) as ns; None when absent or not a number."""
    if isinstance(value, float) and math.isfinite(value):
        return round(value * 1000)
    number = as_int(value)
    return None if number is None else number * 1000


def scalar(value: object) -> AttributeValue:
    """A JSON value as an attribute value: scalars kept, lists as tuples, objects dropped."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        return tuple(scalar(v) for v in value)
    return None


class RowMaker:
    """Checks and builds span rows for one unit of input (a line or a document)."""

    def __init__(self, place: str, stats: ReadStats, ids: IdDecoder, times: TimeCheck) -> None:
        self.place = place
        self.stats = stats
        self.ids = ids
        self.times = times
        self.rows: list[SpanRow] = []
        self._resources: dict[
            tuple[tuple[str, AttributeValue], ...], dict[str, AttributeValue]
        ] = {}

    def resource(
        self, service: object, attributes: dict[str, AttributeValue]
    ) -> tuple[str, dict[str, AttributeValue]]:
        """``(service, resource attributes)``; ``service.name`` set from ``service``."""
        name = service if isinstance(service, str) and service else NO_SERVICE
        if isinstance(service, str) and service:
            attributes["service.name"] = service
        key = tuple(attributes.items())
        try:
            shared = self._resources.setdefault(key, attributes)
        except TypeError:  # an unhashable value cannot happen with scalar(); be safe
            shared = attributes
        return name, shared

    def add(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_id: str,
        name: object,
        kind: SpanKind,
        start_ns: int | None,
        end_ns: int | None,
        is_error: bool,
        attributes: dict[str, AttributeValue],
        service: str,
        resource: dict[str, AttributeValue],
    ) -> SpanRow | None:
        """Append the span's row, or note why it is skipped; return the row or None."""
        label = name if isinstance(name, str) else ""
        ids = self.ids
        tid = ids.trace(trace_id)
        sid = ids.span(span_id)
        pid = ids.parent(parent_id) if parent_id else ""
        who = f"span {sid or clip(span_id)} {clip(label)}"
        place = self.place
        if tid is None:
            note(
                self.stats, "invalid_id", f"{place}: {who} has an invalid trace id {clip(trace_id)}"
            )
        elif sid is None:
            note(self.stats, "invalid_id", f"{place}: {who} has an invalid span id")
        elif pid is None:
            note(self.stats, "invalid_id", f"{place}: {who} has an invalid parent id")
        elif start_ns is None:
            note(self.stats, "span_without_start_time", f"{place}: {who} has no start time")
        elif end_ns is None:
            note(self.stats, "span_without_end_time", f"{place}: {who} has no end time")
        elif (problem := self.times.problem(start_ns, end_ns)) is not None:
            note(self.stats, problem[0], f"{place}: {who} {problem[1]}")
        else:
            row = SpanRow(
                tid,
                sid,
                pid,
                label,
                kind,
                start_ns,
                end_ns,
                is_error,
                attributes,
                service,
                resource,
            )
            self.rows.append(row)
            return row
        return None
