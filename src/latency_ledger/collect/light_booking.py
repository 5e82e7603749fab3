"""A request's light child spans at its end: booked, and exported if it is kept.

Contract: :func:`book_light` books a request's ledger straight from its
:class:`~latency_ledger.collect.light.LightSpan` children (with the offline ledger's
classification rules and the same critical-path rule) when they are direct and
sequential, and returns None otherwise (the collector then books through
:func:`latency_ledger.ledger.book_trace`, given :func:`model_spans`); only for a kept
request, :func:`materialize` turns them into the ``ReadableSpan`` objects the SDK would
export, with the ids, parents, resource and scope it would give them. Pure functions of
the spans (the classification cache aside), read after the spans ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from latency_ledger.collect.spans import UNSET_STATUS
from latency_ledger.ledger import MAX_WALL_NS, split_measured, tail_overlap
from latency_ledger.model import CallKind, Category, Span
from latency_ledger.model import SpanKind as ModelKind

if TYPE_CHECKING:
    from latency_ledger.collect.light import LightSpan

# OpenTelemetry Python numbers SpanKind from 0 (INTERNAL); the model follows OTLP.
_MODEL_KINDS = (
    ModelKind.INTERNAL,
    ModelKind.SERVER,
    ModelKind.CLIENT,
    ModelKind.PRODUCER,
    ModelKind.CONSUMER,
)
_ERROR = StatusCode.ERROR
_DATABASE = Category.DATABASE
_QUERY = CallKind.QUERY
# a wait span's tail (see tails.py), as the offline ledger reads it
TAIL_NS = "ledger.queueing_ns"
TAIL_MAX_NS = "ledger.queueing_max_ns"
DELAY_NS = "ledger.unattributed_ns"


def exported_attributes(span: LightSpan) -> dict[str, Any]:
    """The span's attributes, with its tail, bound and delay when they were measured."""
    if span.bound_ns < 0:
        return span.attributes
    return {
        **span.attributes,
        TAIL_NS: span.tail_ns,
        TAIL_MAX_NS: span.bound_ns,
        DELAY_NS: span.delay_ns,
    }


def _model_span(span: LightSpan, trace_id: str, server_id: str, service: str) -> Span:
    parent = span.parent
    return Span(
        trace_id=trace_id,
        span_id=f"{span.get_span_context().span_id:016x}",
        parent_span_id=f"{parent.get_span_context().span_id:016x}" if parent else server_id,
        name=span.name,
        kind=_MODEL_KINDS[span.kind.value],
        start_ns=span.start_time,
        end_ns=span.end_time or span.start_time,
        is_error=span.status.status_code is _ERROR,
        attributes=exported_attributes(span),
        service=service,
    )


def model_spans(lights: Sequence[LightSpan], server: Span) -> list[Span]:
    """The light spans as :class:`model.Span` children of ``server`` (for ``book_trace``)."""
    return [_model_span(s, server.trace_id, server.span_id, server.service) for s in lights]


def classifier(rules: Sequence[Any]) -> Any:
    from latency_ledger.classify import classify_standard, standard_fields

    if len(rules) == 1 and rules[0] is classify_standard:
        return standard_fields

    def classify(span: Span) -> Any:
        for rule in rules:
            if rule is classify_standard:
                return standard_fields(span)
            found = rule(span)
            if found is not None:
                return found.category, found.kind, found.system, found.target
        return None

    return classify


MAX_CLASSIFIED = 4_096


def book_light(
    start_ns: int,
    end_ns: int,
    cpu_ns: int,
    queueing_ns: int,
    lights: Sequence[LightSpan],
    classify: Callable[[Span], Any],
    classified: dict[tuple[Any, ...], tuple[Any, Any]] | None,
    service: str,
    tallies: dict[str, list[int]] | None = None,
) -> tuple[int, int, int, int, int, int, int, int] | None:
    """(database, network, interpreter, waiting, queueing, database wait bound, network
    wait bound, unbounded I/O) ns of a request from its light children when they are
    direct and sequential (:func:`light_waits`), own time split by its measured CPU and
    queueing as the offline ledger splits it; None otherwise, and the caller books with
    ``book_trace``. ``classify``: :func:`classifier` of the rules; ``tallies``: filled
    with the request's statements as :func:`light_waits` counts them."""
    # not min()/max() (each parses its keywords): this runs for every request
    hi = end_ns if end_ns > start_ns else start_ns
    if hi > start_ns + MAX_WALL_NS:
        hi = start_ns + MAX_WALL_NS
    waits = light_waits(start_ns, hi, lights, classify, classified, service, tallies)
    if waits is None:
        return None
    database, network, tails, (database_slack, network_slack, unbounded) = waits
    own = hi - start_ns - database - network
    return (
        database,
        network,
        *split_measured(own, cpu_ns, queueing_ns if queueing_ns > tails else tails),
        database_slack,
        network_slack,
        unbounded,
    )


def light_waits(
    lo: int,
    hi: int,
    lights: Sequence[LightSpan],
    classify: Callable[[Span], Any],
    classified: dict[tuple[Any, ...], tuple[Any, Any]] | None,
    service: str,
    tallies: dict[str, list[int]] | None = None,
) -> tuple[int, int, int, tuple[int, int, int]] | None:
    """(database, network, tails, bounds) ns of a request spanning ``lo``..``hi`` from its
    light children, when they are direct and sequential; None otherwise. ``tails``: the
    parts of wait spans' tails (``tail_ns``, see tails.py) moved from their category to
    own time; ``bounds``: as ``ledger.book_spans`` gives them (what may still be waiting
    for Python in database and network, and the time of waits not measured).

    Sequential children (after clipping to the request, each starts at or after the
    previous one ends) never compete for an instant, so the critical-path rule gives each
    its whole clipped length: a wait's length goes to its category, any other span's to
    own time. That is :func:`latency_ledger.ledger.book_trace`'s answer for such a tree
    (a test checks both agree); for anything else (nested, overlapping) the caller books
    with ``book_trace``. ``classify`` is :func:`classifier`'s result for the rules.

    ``tallies``, when given, gets the request's database statements counted by their raw
    text: ``[calls, booked ns, longest call ns]`` each (``statements.py`` makes the
    ``ledger.statement.*`` attributes of them); a dict lookup and two adds a statement,
    as the spans are walked anyway. Left partly filled when this returns None.
    """
    database_category = _DATABASE
    database = network = tails = 0
    database_slack = network_slack = unbounded = 0
    previous_end = lo
    # Spans are listed as they ended, which for sequential ones is also their start
    # order: walked as listed while they are in _start's order (a key call per span and
    # a sort saved), sorted and walked again from the start once one is not. Equal: an
    # overlap found in a sorted prefix is one in the sorted whole too.
    key_start = key_end = lo - MAX_WALL_NS  # the previous span's _start key
    for light in lights:
        if light.parent is not None:
            return None
        start = light.start_time
        raw_end = light.end_time or start
        if start < key_start or (start == key_start and raw_end < key_end):
            if tallies:
                tallies.clear()  # counted again in the sorted walk
            return light_waits(
                lo, hi, sorted(lights, key=_START), classify, classified, service, tallies
            )
        key_start, key_end = start, raw_end
        start = lo if start < lo else (hi if start > hi else start)
        end = light.end_time or start
        if end > hi:
            end = hi
        elif end < start:
            end = start
        if start < previous_end:
            return None
        previous_end = end
        # A span with a plugin's shared attributes (one dict per statement) is classified
        # once per (dict, name, kind, error): all a rule reads of a span here. The entry
        # holds the dict, so its id cannot be reused by another while cached. The kind
        # by identity and the error as a bool: an Enum member's hash and ``value``, and
        # ``Status.status_code``, are Python calls, and this runs for every span.
        status = light.status
        failed = status is not UNSET_STATUS and status.status_code is _ERROR
        key = (id(light.attributes), light.name, id(light.kind), failed) if light.shared else None
        hit = classified.get(key) if classified is not None and key is not None else None
        if hit is not None:
            found = hit[1]
        else:
            found = classify(
                Span(
                    trace_id="",
                    span_id="",
                    parent_span_id="",
                    name=light.name,
                    kind=_MODEL_KINDS[light.kind.value],
                    start_ns=light.start_time,
                    end_ns=light.end_time or light.start_time,
                    is_error=failed,
                    attributes=light.attributes,
                    service=service,
                )
            )
            if classified is not None and key is not None:
                if len(classified) >= MAX_CLASSIFIED:
                    classified.clear()
                classified[key] = (light.attributes, found)
        if found is None:
            continue
        length = end - start
        bound = light.bound_ns
        slack = 0
        if bound < 0:  # not measured: see exported_attributes
            unbounded += length
        else:
            tail = light.tail_ns
            if tail > 0 or light.delay_ns > 0:
                moved = tail_overlap(
                    tail + light.delay_ns, start, end, light.end_time or light.start_time
                )
                length -= moved
                tails += tail if tail < moved else moved
            slack = bound - tail
            slack = 0 if slack < 0 or length <= 0 else (length if slack > length else slack)
        if found[0] == database_category:
            database += length
            database_slack += slack
            if found[1] is _QUERY and tallies is not None:
                # booked as the offline ledger books the call; its own duration unclipped
                tally = tallies.get(found[3])
                if tally is None:
                    tallies[found[3]] = [1, length, raw_end - light.start_time]
                else:
                    tally[0] += 1
                    tally[1] += length
                    if raw_end - light.start_time > tally[2]:
                        tally[2] = raw_end - light.start_time
        else:
            network += length
            network_slack += slack
    return database, network, tails, (database_slack, network_slack, unbounded)


def _start(span: LightSpan) -> tuple[int, int]:
    # then by end: a zero-length span starting where a longer one starts goes first,
    # so the order the spans ended in cannot make them look overlapping
    return span.start_time, span.end_time or span.start_time


_START = _start


def materialize(lights: Sequence[LightSpan], acct: Any, collector: Any) -> list[ReadableSpan]:
    """Kept request: the light spans as the ``ReadableSpan`` objects the SDK would export."""
    server_context = acct.server.context
    resource = collector.provider.resource
    out = []
    for light in lights:
        parent = light.parent
        out.append(
            ReadableSpan(
                name=light.name,
                context=light.get_span_context(),
                parent=parent.get_span_context() if parent is not None else server_context,
                resource=resource,
                attributes=exported_attributes(light),
                events=tuple(light.events),
                kind=light.kind,
                status=light.status,
                start_time=light.start_time,
                end_time=light.end_time,
                instrumentation_scope=light.tracer.scope,
            )
        )
    return out
