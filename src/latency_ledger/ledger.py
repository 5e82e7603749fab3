"""The ledger: one trace -> its booked requests (DESIGN.md, "The ledger").

Contract: :func:`book_trace` is pure. Every request's parts add up to its wall time
exactly, in integer nanoseconds, whatever the spans look like (overlaps, children that
outlive their parents, zero-length or inverted spans, cycles, duplicate ids).

Requests: a SERVER span, or a root span (no parent in the trace) marked INTERNAL or
UNSPECIFIED that carries HTTP server attributes, for exporters that mark everything
INTERNAL. A descendant counts toward the nearest enclosing request. A SERVER span of
the same service inside a request, not under a wait span (a framework's handler span
under its HTTP server span), is part of that request: the outermost is the request and
the inner one's children count in it. Any other nested SERVER span (another service's,
or one under a CLIENT span: a downstream call) starts its own request and, seen from
the outer request, is network time.

Booking (critical path, as Jaeger / CRISP): children are clipped to their parent; each
instant of a parent's booked time that children cover goes to ONE child, the one that
finishes last (ties: later start, then larger span id); each child's booked instants are
split among its own children the same way. Instants booked to a wait span (or anything
under it) go to that span's category; uncovered instants of other spans are the
request's own time. Own time is ``interpreter`` + ``native`` + ``waiting`` when the
request span carries ``ledger.cpu_ns``, else ``app``; ``native`` is the part of the CPU
its ``ledger.profile`` measured inside compiled extensions (0 when not profiled:
aggregation estimates it). When the collector did not export the children
(``ledger.spans_kept`` false), the request is booked from its ``ledger.*`` totals.

A request that is a long-lived stream (``streams.stream_kind``: gRPC streams,
websockets, server-sent events) is booked the same way and marked ``stream``.

Spans under no request (orphans whose request is missing, traces with no request, spans
in parent cycles, duplicate span ids) are counted in ``unbooked_spans``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from operator import attrgetter, itemgetter
from typing import TypeVar

from latency_ledger.classify import (
    DEFAULT_RULES,
    ClassifiedFields,
    answered_fields,
    classify_standard,
    standard_fields,
)
from latency_ledger.endpoint import (
    attr_str,
    endpoint_name,
    http_method,
    named_by_route,
    route_template,
)
from latency_ledger.model import (
    ROW_END,
    ROW_START,
    Attributes,
    AttributeValue,
    Call,
    CallKind,
    CallRow,
    Category,
    Ledger,
    Request,
    Span,
    SpanKind,
    Trace,
)
from latency_ledger.plugins import ClassifyRule
from latency_ledger.profiles import profile_native_ns
from latency_ledger.streams import stream_kind

# Attribute names of the contract with the in-app collector (collect/), all in ns.
CPU_NS = "ledger.cpu_ns"
QUEUEING_NS = "ledger.queueing_ns"
OVERHEAD_NS = "ledger.overhead_ns"
SPANS_KEPT = "ledger.spans_kept"
KEEP_PROBABILITY = "ledger.keep_probability"
DATABASE_NS = "ledger.database_ns"
NETWORK_NS = "ledger.network_ns"
# all own CPU, interpreter + native: the collector books totals without splitting the
# CPU; a profiled request's ``ledger.profile`` does, in both booking paths alike
INTERPRETER_NS = "ledger.interpreter_ns"
WAITING_NS = "ledger.waiting_ns"
PROFILE = "ledger.profile"
_TOTALS = (DATABASE_NS, NETWORK_NS, INTERPRETER_NS, WAITING_NS)
# On a wait span: the stretch at its end spent waiting for the event loop or the
# interpreter lock after the I/O (collect/tails.py), booked as waiting and queueing.
TAIL_NS = QUEUEING_NS
# On a wait span: the stretch the OS kept its thread from a CPU (just before the tail):
# waiting, not the span's category, and not queueing either.
DELAY_NS = "ledger.unattributed_ns"
# On a wait span: the bound on its tail (collect/tails.py); what of it was not booked as
# tail may still be waiting for Python inside the span's category. A wait span without it
# in a request with CPU measured was not measured at all (its wait is unbounded).
TAIL_MAX_NS = "ledger.queueing_max_ns"
# On a request span: the same bounds summed over its wait spans (the collector writes them
# for every request, kept or not), and the CPU of native libraries' own threads charged
# to it and its bound (collect/native_threads.py).
DATABASE_WAIT_MAX_NS = "ledger.database_wait_max_ns"
NETWORK_WAIT_MAX_NS = "ledger.network_wait_max_ns"
UNBOUNDED_IO_NS = "ledger.unbounded_io_ns"
NATIVE_THREADS_NS = "ledger.native_threads_ns"
NATIVE_THREADS_MAX_NS = "ledger.native_threads_max_ns"
# Longer "requests" are corrupt timestamps; the cap keeps every part inside the int64
# columns aggregation stores them in (2**62 ns is ~146 years).
MAX_WALL_NS = 2**62

_CALL_ORDER = attrgetter("start_ns", "end_ns")
_ROW_ORDER = itemgetter(ROW_START, ROW_END)
_R = TypeVar("_R")
_HTTP_ROOT_KINDS = frozenset({SpanKind.INTERNAL, SpanKind.UNSPECIFIED})
# Network calls a database may stand behind (an HTTP call to Elasticsearch answered by a
# SERVER span of service "elasticsearch"); caches, messaging and client I/O are not.
_ANSWERABLE = frozenset({CallKind.HTTP, CallKind.RPC, CallKind.OTHER})
# what a request's name depends on when it has a route template (endpoint.named_by_route)
_METHOD, _OLD_METHOD, _ROUTE = "http.request.method", "http.method", "http.route"


def fast_constructor(cls: type[_R]) -> Callable[..., _R]:
    """A keyword constructor for the frozen slotted dataclass ``cls`` that writes its
    slots directly: the records built once per span or request (Call, Ledger, Request).

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``.
    Here the record is made as an instance of a plain twin class with the same slots,
    filled by ordinary attribute stores (the interpreter writes a slot inline), and then
    becomes a ``cls`` by one ``__class__`` assignment (allowed between classes of the
    same slot layout, as ``read.values`` makes spans). Counted with callgrind, a Call
    built through its slots' ``__set__`` descriptors (as this did before) cost ~3x the
    twin's stores: a third of booking a flat trace. The result is the same record (a
    test compares them). A class with a ``__post_init__``, a field not in ``__init__`` or
    a default factory gets its own constructor back; one whose layout the twin does not
    match (a probe record must come out right) gets the descriptor stores. Generated like
    ``dataclasses`` makes ``__init__`` (from the class's own fields), so it follows the
    class as it changes."""
    found = fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or any(
        not f.init or f.default_factory is not MISSING for f in found
    ):
        return cls
    names = [f.name for f in found]
    twin = type(f"_Unfrozen{cls.__name__}", (), {"__slots__": tuple(names)})
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": cls, "_twin": twin}
    params = []
    for f in found:
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    # positional too (in field order) where Python allows it: no default before a non-default
    defaults = [f.default is not MISSING for f in found]
    star = "" if defaults == sorted(defaults) else "*, "
    head = f"def make({star}{', '.join(params)}):\n"
    stores = "".join(f"    record.{name} = {name}\n" for name in names)
    source = (
        f"{head}    record = _new(_twin)\n{stores}    record.__class__ = _cls\n    return record\n"
    )
    exec(source, namespace)  # our own field names only, as dataclasses does
    make = namespace["make"]
    probe = {name: object() for name in names}  # distinct values: a swapped slot shows
    try:
        fast = make(**probe)  # type: ignore[operator]
        same = type(fast) is cls and all(getattr(fast, n) is v for n, v in probe.items())
    except TypeError:  # slot layouts differ: the __class__ assignment is refused
        same = False
    if same:
        return make  # type: ignore[return-value]
    body = "".join(f"    _set_{name}(record, {name})\n" for name in names)
    exec(f"{head}    record = _new(_cls)\n{body}    return record\n", namespace)
    return namespace["make"]  # type: ignore[return-value]


new_call = fast_constructor(Call)
new_ledger = fast_constructor(Ledger)
new_request = fast_constructor(Request)


@dataclass(frozen=True, slots=True, kw_only=True)
class BookedTrace:
    requests: tuple[Request, ...]
    unbooked_spans: int  # spans under no request


def as_int(value: AttributeValue) -> int | None:
    """An attribute as an int: ints, finite floats and decimal strings; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and 0 < len(value) <= 20:
        digits = value[1:] if value[0] == "-" else value
        if digits.isascii() and digits.isdigit():
            return int(value)
    return None


def _is_false(value: AttributeValue) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "false"
    return value is False


def is_http_root(span: Span) -> bool:
    """A root span that is really a server span an exporter marked INTERNAL."""
    if span.kind not in _HTTP_ROOT_KINDS:
        return False
    attrs = span.attributes
    return bool(http_method(attrs)) and bool(
        attr_str(attrs, "http.route", "url.path", "http.target")
    )


def book_trace(
    trace: Trace,
    *,
    rules: Sequence[ClassifyRule] = DEFAULT_RULES,
    memo: ClassifyMemo | None = None,
) -> BookedTrace:
    """Book every request of one trace; count the spans that belong to none.

    ``memo`` (a :class:`ClassifyMemo` kept across traces) remembers the built-in rule's
    answer per attribute dict OBJECT, kind, name and service: with a reader that hands
    out one dict per distinct attribute set (``read.fast``), each set is classified once.
    Other rules still run on every span. It also remembers request names by route. The
    answers are the same with or without it."""
    spans = trace.spans
    if memo is not None:
        flat = _book_flat(spans, rules, memo, records=True)
        if flat is not None:
            return flat[0]
    return _book_tree(spans, rules, memo)


def book_trace_rows(
    trace: Trace, *, rules: Sequence[ClassifyRule], memo: ClassifyMemo
) -> tuple[BookedTrace, list[CallRow] | None]:
    """:func:`book_trace` with a memo, for a caller that reads calls as rows (the
    findings accumulator): when the trace has the flat shape (:func:`_book_flat`), its
    one request comes with ``calls=()`` and its calls as rows, in ``Request.calls``'
    order, without a Call record made for each; else rows are None and the requests are
    :func:`book_trace`'s."""
    flat = _book_flat(trace.spans, rules, memo)
    if flat is not None:
        return flat
    return _book_tree(trace.spans, rules, memo), None


def _book_tree(
    spans: Sequence[Span], rules: Sequence[ClassifyRule], memo: ClassifyMemo | None
) -> BookedTrace:
    """:func:`book_trace` of any shape, through the span tree."""
    # The first span of a duplicated id wins (later ones stay unbooked).
    by_id = {span.span_id: span for span in reversed(spans)}
    children: dict[str, list[Span]] = {}
    pending: list[Span] = []  # request spans still to book
    outside: list[Span] = []  # roots that are not requests: orphans and odd roots
    server = SpanKind.SERVER
    for span in by_id.values():
        parent = span.parent_span_id
        # A span in a parent cycle is never reached from a root, so it stays unbooked.
        if parent and parent in by_id:
            siblings = children.get(parent)
            if siblings is None:
                children[parent] = [span]
            else:
                siblings.append(span)
        elif span.kind == server or is_http_root(span):
            pending.append(span)
        else:
            outside.append(span)
    get_children = children.get
    while outside:
        kids = get_children(outside.pop().span_id)
        if kids is not None:
            for kid in kids:
                (pending if kid.kind == server else outside).append(kid)
    requests: list[Request] = []
    booked = 0
    while pending:
        # Booking a request adds the SERVER spans nested in it to ``pending``.
        request, covered = book_request(pending.pop(), children, rules, pending, memo)
        requests.append(request)
        booked += covered
    requests.sort(key=lambda r: (r.start_ns, r.span_id))
    return BookedTrace(requests=tuple(requests), unbooked_spans=len(spans) - booked)


def _book_flat(
    spans: Sequence[Span], rules: Sequence[ClassifyRule], memo: ClassifyMemo, records: bool = False
) -> tuple[BookedTrace, list[CallRow]] | None:
    """:func:`book_trace` for the common shape, or None for any other, with the request's
    calls as rows (its ``calls`` left empty) unless ``records``: one request span
    (a SERVER span whose parent is not in the trace) with every other span its direct,
    non-SERVER child, and no span id twice. Then booking is one sweep over the children
    (:func:`book_spans` with one level: the same arithmetic, in the same order), without
    the span-id maps. ``tests/test_ledger_memo.py`` holds it to ``book_trace`` without a
    memo (which never comes here) on random traces of every shape."""
    ids = {span.span_id for span in spans}
    if len(ids) != len(spans):
        return None
    root = None
    for span in spans:
        if span.parent_span_id not in ids:
            if root is not None:
                return None
            root = span
    server = SpanKind.SERVER
    if root is None or root.kind != server:
        return None
    root_id = root.span_id
    start = root.start_ns
    wall = root.end_ns - start
    wall = 0 if wall < 0 else (MAX_WALL_NS if wall > MAX_WALL_NS else wall)
    end = start + wall
    # (clipped end, clipped start, span id, span): the booking priority, sorted below
    siblings: list[tuple[int, int, str, Span]] = []
    add_sibling = siblings.append
    for kid in spans:
        if kid is root:
            continue
        if kid.parent_span_id != root_id or kid.kind == server:
            return None
        k_start = kid.start_ns
        if k_start < start:
            k_start = start
        elif k_start > end:
            k_start = end
        k_end = kid.end_ns
        if k_end > end:
            k_end = end
        elif k_end < k_start:
            k_end = k_start
        add_sibling((k_end, k_start, kid.span_id, kid))
    attrs = root.attributes
    if _is_false(attrs.get(SPANS_KEPT)) and any(key in attrs for key in _TOTALS):
        ledger = ledger_from_totals(attrs, wall)
        request = request_record(root, ledger, from_totals=True)
        return BookedTrace(requests=(request,), unbooked_spans=0), []
    siblings.sort(reverse=True)
    before, standard, after = _split_rules(rules)
    database = network = own = tails = 0
    database_slack = network_slack = unbounded = 0
    database_category = Category.DATABASE
    rows: list[CallRow] = []
    add_call = rows.append
    memo_get = memo.get
    frontier = end
    taken = 0
    found: ClassifiedFields | None
    for k_end, k_start, _, kid in siblings:
        won_end = k_end if k_end < frontier else frontier
        if won_end < k_start:
            won_end = k_start
        elif k_start < frontier:
            frontier = k_start
        length = won_end - k_start
        taken += length
        found = None
        for rule in before:
            ruled = rule(kid)
            if ruled is not None:
                found = ruled.category, ruled.kind, ruled.system, ruled.target
                break
        if standard:
            kid_attrs = kid.attributes
            hit = memo_get((id(kid_attrs), kid.kind, kid.name, kid.service))
            if hit is None or hit[0] is not kid_attrs:
                hit = _memo_entry(kid, memo)
            extras = hit[2]
            if found is None:
                found = hit[1]
        else:
            kid_attrs = kid.attributes
            extras = (kid_attrs.get(TAIL_NS), kid_attrs.get(DELAY_NS), kid_attrs.get(TAIL_MAX_NS))
        if found is None and after:
            found = classify_fields(kid, after)
        if found is None:
            own += length  # a leaf that is not a wait: the request's own time
            continue
        if extras is None:  # the usual wait span: no tail, no bound
            unbounded += length
            if found[0] == database_category:
                database += length
            else:
                network += length
            # concatenation: ~30% fewer instructions than a starred tuple display
            add_call(found + (kid.start_ns, kid.end_ns, length))  # noqa: RUF005
            continue
        moved, tail_part, slack = wait_tail(*extras, k_start, won_end, kid.end_ns)
        length -= moved
        own += moved
        tails += tail_part
        if slack is None:
            slack = 0
            unbounded += length
        elif slack > length:
            slack = length
        if found[0] == database_category:
            database += length
            database_slack += slack
        else:
            network += length
            network_slack += slack
        add_call(found + (kid.start_ns, kid.end_ns, length))  # noqa: RUF005
    own += end - start - taken
    ledger = split_own_time(
        attrs, database, network, own, tails, (database_slack, network_slack, unbounded)
    )
    rows.sort(key=_ROW_ORDER)  # Request.calls' order: by start, then end
    names = getattr(memo, "names", None)
    if records:
        calls = tuple([new_call(*row) for row in rows])
        request = request_record(root, ledger, calls=calls, names=names)
        return BookedTrace(requests=(request,), unbooked_spans=0), []
    request = request_record(root, ledger, names=names)
    return BookedTrace(requests=(request,), unbooked_spans=0), rows


def book_request(
    span: Span,
    children: dict[str, list[Span]],
    rules: Sequence[ClassifyRule],
    nested: list[Span],
    memo: ClassifyMemo | None = None,
) -> tuple[Request, int]:
    """One request span -> its Request and how many spans it covers.

    SERVER spans found under it are appended to ``nested`` (booked by the caller, so
    nesting depth never becomes recursion depth); the count excludes their subtrees.
    """
    attrs = span.attributes
    wall = min(max(0, span.end_ns - span.start_ns), MAX_WALL_NS)
    from_totals = _is_false(attrs.get(SPANS_KEPT)) and any(key in attrs for key in _TOTALS)
    calls: tuple[Call, ...] = ()
    if from_totals:
        ledger = ledger_from_totals(attrs, wall)
        # Which spans belong to it (and which nested SERVER spans are requests of their
        # own) follows the same rules as when booking from spans; usually it has none.
        covered = book_spans(span, children, rules, nested, memo)[4]
    else:
        database, network, own, call_list, covered, tails, bounds = book_spans(
            span, children, rules, nested, memo
        )
        ledger = split_own_time(attrs, database, network, own, tails, bounds)
        call_list.sort(key=_CALL_ORDER)
        calls = tuple(call_list)
    request = request_record(
        span, ledger, calls=calls, from_totals=from_totals, names=getattr(memo, "names", None)
    )
    return request, covered


def request_record(
    span: Span,
    ledger: Ledger,
    *,
    calls: tuple[Call, ...] = (),
    from_totals: bool = False,
    names: RequestNames | None = None,
) -> Request:
    """A request span and its booked ledger -> the Request (endpoint, status, weights).

    Shared by :func:`book_request` and sources that book the ledger elsewhere (a
    database computing it in SQL, ``clickhouse.book``). ``names``: request names
    remembered across requests (``ClassifyMemo.names``); the same names either way."""
    attrs = span.attributes
    if names is None:
        method, endpoint = endpoint_name(span)
    else:
        key = (attrs.get(_METHOD), attrs.get(_OLD_METHOD), attrs.get(_ROUTE))
        try:
            named = names.get(key)
        except TypeError:  # an unhashable value (attributes are untrusted)
            named = endpoint_name(span)
        else:
            if named is None:
                named = endpoint_name(span)
                if named_by_route(attrs):
                    if len(names) >= NAMES_LIMIT:
                        names.clear()
                    names[key] = named
        method, endpoint = named
    status = as_int(attrs.get("http.response.status_code", attrs.get("http.status_code")))
    if status is not None and not 100 <= status <= 599:
        status = None  # "0" (not set) and garbage are not statuses
    overhead = attrs.get(OVERHEAD_NS)
    overhead = as_int(overhead) if overhead is not None else None
    weight = attrs.get(KEEP_PROBABILITY)
    return new_request(
        trace_id=span.trace_id,
        span_id=span.span_id,
        service=span.service,
        method=method,
        endpoint=endpoint,
        start_ns=span.start_ns,
        wall_ns=min(max(0, span.end_ns - span.start_ns), MAX_WALL_NS),
        status_code=status,
        is_error=span.is_error or (status is not None and status >= 500),
        ledger=ledger,
        calls=calls,
        from_totals=from_totals,
        collector_overhead_ns=max(0, overhead or 0),
        keep_probability=keep_probability(weight) if weight is not None else 1.0,
        stream=stream_kind(span),
    )


def keep_probability(value: object) -> float:
    """``ledger.keep_probability`` as a probability in (0, 1]; 1.0 when absent or not one
    (trace content is untrusted: a zero or garbage must not weight a tree infinitely)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return 1.0
    try:
        found = float(value)
    except ValueError:
        return 1.0
    return found if 1e-6 <= found <= 1.0 else 1.0


def _cover(span: Span, children: dict[str, list[Span]], nested: list[Span]) -> int:
    """Spans in ``span``'s subtree (itself included), minus nested requests' subtrees."""
    get_children = children.get
    server = SpanKind.SERVER
    covered = 0
    stack = [span]
    while stack:
        covered += 1
        kids = get_children(stack.pop().span_id)
        if kids is not None:
            for kid in kids:
                (nested if kid.kind == server else stack).append(kid)
    return covered


def split_own_time(
    attrs: Attributes,
    database: int,
    network: int,
    own: int,
    tails: int = 0,
    bounds: tuple[int, int, int] = (0, 0, 0),
) -> Ledger:
    """Own time -> interpreter + waiting (CPU measured in-app) or app (not measured).

    ``tails``: the wait spans' tails moved into own time; queueing is at least that.
    ``bounds``: the wait spans' (database, network) waits that may be Python's, and the
    I/O time of spans with no such bound (:func:`book_spans`); kept with CPU measured
    only (traces from other tools measure no tail at all).
    """
    cpu = as_int(attrs.get(CPU_NS))
    if cpu is None:
        return new_ledger(database_ns=database, network_ns=network, app_ns=own)
    return _measured(attrs, database, network, own, cpu, tails, bounds)


def split_measured(own: int, cpu: int, queueing: int) -> tuple[int, int, int]:
    """(interpreter, waiting, queueing) of ``own`` time by a CPU measurement: interpreter
    is the CPU clipped to own time, waiting the rest, queueing clipped to waiting."""
    interpreter = min(max(cpu, 0), own)
    waiting = own - interpreter
    return interpreter, waiting, min(max(queueing, 0), waiting)


def _measured(
    attrs: Attributes,
    database: int,
    network: int,
    own: int,
    cpu: int,
    tails: int = 0,
    bounds: tuple[int, int, int] | None = None,
) -> Ledger:
    """Own time split by a CPU measurement (:func:`split_measured`); the CPU split into
    interpreter and native by the request's profile, if it has one (native clipped to
    the CPU booked). Both booking paths (span tree, ``ledger.*`` totals) end here.
    ``tails``: wait spans' tails moved into own time; queueing is at least that.
    ``bounds``: from the span tree (:func:`book_spans`); None: the request span's totals.

    Native libraries' threads: of the waiting that is not queueing (the request off its
    CPU with nothing instrumented), up to the CPU those threads burned for it is the
    wall time it waited for them, booked ``native``."""
    queueing = max(as_int(attrs.get(QUEUEING_NS)) or 0, tails)
    interpreter, waiting, queueing = split_measured(own, cpu, queueing)
    database_max, network_max, unbounded, threads, threads_max, threads_booked = estimates(
        attrs, database, network, waiting - queueing, bounds
    )
    waiting -= threads_booked
    profiled = profile_native_ns(attrs.get(PROFILE))
    native = native_max = 0
    if profiled is not None:
        booked, upper, seen = profiled
        native = min(booked, interpreter)
        # CPU the profile did not see (worker threads: only the thread that started the
        # profile is sampled) may be native too: the upper bound includes it
        unseen = max(0, interpreter - seen) if seen is not None else 0
        native_max = min(upper + unseen, interpreter)
    return new_ledger(
        database_ns=database,
        network_ns=network,
        interpreter_ns=interpreter - native,
        waiting_ns=waiting,
        queueing_ns=queueing,
        cpu_measured=True,
        native_ns=native + threads_booked,
        native_measured=profiled is not None,
        native_max_ns=native_max,
        database_wait_max_ns=database_max,
        network_wait_max_ns=network_max,
        unbounded_io_ns=unbounded,
        native_threads_ns=threads,
        native_threads_max_ns=threads_max,
        native_threads_booked_ns=threads_booked,
    )


# A request span's attributes that :func:`estimates` reads.
ESTIMATE_KEYS = (
    DATABASE_WAIT_MAX_NS,
    NETWORK_WAIT_MAX_NS,
    UNBOUNDED_IO_NS,
    NATIVE_THREADS_NS,
    NATIVE_THREADS_MAX_NS,
)


def estimates(
    attrs: Attributes,
    database: int,
    network: int,
    idle: int,
    bounds: tuple[int, int, int] | None = None,
) -> tuple[int, int, int, int, int, int]:
    """(database wait bound, network wait bound, unbounded I/O, native threads' CPU, its
    bound, the part of ``idle`` waited for them) of a request with CPU measured, each
    bound clipped to what it bounds; ``idle``: its waiting that is not queueing;
    ``bounds``: from its span tree (:func:`book_spans`), else the request span's totals."""
    if bounds is None:
        bounds = (
            _nonnegative(attrs.get(DATABASE_WAIT_MAX_NS)),
            _nonnegative(attrs.get(NETWORK_WAIT_MAX_NS)),
            _nonnegative(attrs.get(UNBOUNDED_IO_NS)),
        )
    threads_max = _nonnegative(attrs.get(NATIVE_THREADS_MAX_NS))
    threads = min(_nonnegative(attrs.get(NATIVE_THREADS_NS)), threads_max)
    return (
        min(bounds[0], database),
        min(bounds[1], network),
        min(bounds[2], database + network),
        threads,
        threads_max,
        max(0, min(threads, idle)),
    )


def with_estimates(
    ledger: Ledger, attrs: Attributes, bounds: tuple[int, int, int] | None = None
) -> Ledger:
    """A ledger booked elsewhere (ClickHouse's SQL) from a request span's totals, or from
    its span tree with the tree's ``bounds`` (:func:`book_spans`), with :func:`estimates`
    applied as :func:`_measured` applies them."""
    if not ledger.cpu_measured or (
        bounds is None and not any(key in attrs for key in ESTIMATE_KEYS)
    ):
        return ledger
    database_max, network_max, unbounded, threads, threads_max, booked = estimates(
        attrs,
        ledger.database_ns,
        ledger.network_ns,
        ledger.waiting_ns - ledger.queueing_ns,
        bounds,
    )
    return replace(
        ledger,
        waiting_ns=ledger.waiting_ns - booked,
        native_ns=ledger.native_ns + booked,
        database_wait_max_ns=database_max,
        network_wait_max_ns=network_max,
        unbounded_io_ns=unbounded,
        native_threads_ns=threads,
        native_threads_max_ns=threads_max,
        native_threads_booked_ns=booked,
    )


def _nonnegative(value: AttributeValue) -> int:
    found = as_int(value) if value is not None else None
    return found if found is not None and found > 0 else 0


def ledger_from_totals(attrs: Attributes, wall: int) -> Ledger:
    """The collector's in-app totals, clipped and repaired to add up to ``wall``.

    Parts are taken in order (database, network, interpreter) each clipped to what is
    left; waiting takes the rest, so a rounding gap between the collector's clock and
    the span's never breaks the sum.
    """
    database = min(max(as_int(attrs.get(DATABASE_NS)) or 0, 0), wall)
    network = min(max(as_int(attrs.get(NETWORK_NS)) or 0, 0), wall - database)
    own = wall - database - network
    interpreter = as_int(attrs.get(INTERPRETER_NS))
    if interpreter is None:
        interpreter = as_int(attrs.get(CPU_NS))
    if interpreter is None:
        waiting_given = as_int(attrs.get(WAITING_NS))
        if waiting_given is None:
            return Ledger(database_ns=database, network_ns=network, app_ns=own)
        interpreter = own - min(max(waiting_given, 0), own)
    return _measured(attrs, database, network, own, interpreter)


def book_spans(
    request: Span,
    children: dict[str, list[Span]],
    rules: Sequence[ClassifyRule],
    nested: list[Span],
    memo: ClassifyMemo | None = None,
) -> tuple[int, int, int, list[Call], int, int, tuple[int, int, int]]:
    """``(database_ns, network_ns, own_ns, calls, spans covered, tails_ns, bounds)`` from
    a span tree.

    A wait span's tail (``ledger.queueing_ns`` on it: the end of the span spent waiting
    for the loop or the interpreter lock) and, just before it, its delay
    (``ledger.unattributed_ns``: its thread waiting for a CPU) are own time, not the
    span's category, for the part inside what the span booked; ``tails_ns`` sums the
    tails' parts (queueing). ``bounds``: ``(database, network, unbounded)``, the parts
    of what wait spans kept in their category that may still be waiting for Python
    (their tail's bound ``ledger.queueing_max_ns`` less the tail), and what spans
    without that bound kept (their wait was not measured).

    Nested SERVER spans are appended to ``nested``, as in :func:`book_request`.

    Why each span's booked time is ONE interval, starting where the span starts: a child
    C loses an instant only to siblings that finish at or after it (higher priority),
    and each of those, seen before C's end, covers a suffix ``[start, C.end)``; their
    union is a suffix too, so C keeps ``[C.start, min(C.end, earliest start of those
    siblings))``, cut at the end of what its parent itself kept. So: sort siblings by
    priority (end, start, span id; descending) and walk them once.

    Iterative (no recursion limit on deep trees); runs once per span of every trace.
    """
    start = request.start_ns
    end = min(max(start, request.end_ns), start + MAX_WALL_NS)
    database = network = own = tails = 0
    database_slack = network_slack = unbounded = 0
    calls: list[Call] = []
    get_children = children.get
    server = SpanKind.SERVER
    client = SpanKind.CLIENT
    service = request.service
    database_category = Category.DATABASE
    standard_only = len(rules) == 1 and rules[0] is classify_standard
    make_call = new_call
    # (span, clipped start, clipped end, end of the interval it was booked from its start)
    stack: list[tuple[Span, int, int, int]] = [(request, start, end, end)]
    covered = 0
    while stack:
        node, lo, hi, booked_end = stack.pop()
        covered += 1
        kids = get_children(node.span_id)
        if kids is None:
            own += booked_end - lo
            continue
        siblings: list[tuple[int, int, str, Span]] = []
        for kid in kids:
            k_start = kid.start_ns
            if k_start < lo:
                k_start = lo
            elif k_start > hi:
                k_start = hi
            k_end = kid.end_ns
            if k_end > hi:
                k_end = hi
            elif k_end < k_start:
                k_end = k_start
            siblings.append((k_end, k_start, kid.span_id, kid))
        if len(siblings) > 1:
            siblings.sort(reverse=True)
        frontier = booked_end  # where the part still unbooked ends
        taken = 0
        for k_end, k_start, _, kid in siblings:
            won_end = k_end if k_end < frontier else frontier
            if won_end < k_start:
                won_end = k_start
            elif k_start < frontier:
                frontier = k_start
            length = won_end - k_start
            taken += length
            if kid.kind == server:
                if kid.service == service:
                    # The same service's SERVER span inside its own request (a framework's
                    # handler span under its HTTP server span): part of this request.
                    stack.append((kid, k_start, k_end, won_end))
                    continue
                # Another service's request: its own ledger is booked separately.
                network += length
                calls.append(_nested_server_call(kid, length))
                nested.append(kid)
                continue
            if memo is not None:
                found = _classify_memo(kid, rules, memo)
            elif standard_only:
                found = standard_fields(kid)
            else:
                found = classify_fields(kid, rules)
            if found is None:
                stack.append((kid, k_start, k_end, won_end))
                continue
            if found[1] in _ANSWERABLE and kid.kind == client:
                answers = get_children(kid.span_id)
                if answers is not None:
                    found = answered_fields(kid, answers) or found
            # A wait span's descendants are its own; count them as covered.
            covered += 1 if get_children(kid.span_id) is None else _cover(kid, children, nested)
            category, kind, system, target = found
            kid_attrs = kid.attributes
            moved, tail_part, slack = wait_tail(
                kid_attrs.get(TAIL_NS),
                kid_attrs.get(DELAY_NS),
                kid_attrs.get(TAIL_MAX_NS),
                k_start,
                won_end,
                kid.end_ns,
            )
            length -= moved
            own += moved
            tails += tail_part
            if slack is None:
                slack = 0
                unbounded += length
            elif slack > length:
                slack = length
            if category == database_category:
                database += length
                database_slack += slack
            else:
                network += length
                network_slack += slack
            calls.append(
                make_call(
                    category=category,
                    kind=kind,
                    system=system,
                    target=target,
                    start_ns=kid.start_ns,
                    end_ns=kid.end_ns,
                    booked_ns=length,
                )
            )
        own += booked_end - lo - taken
    return database, network, own, calls, covered, tails, (database_slack, network_slack, unbounded)


def wait_tail(
    tail: AttributeValue,
    delay: AttributeValue,
    bound: AttributeValue,
    booked_start: int,
    booked_end: int,
    span_end: int,
) -> tuple[int, int, int | None]:
    """``(moved, tail part, slack)`` of a wait span booked ``[booked_start, booked_end)``
    whose attributes give its tail, delay and tail bound (raw values; None: absent).

    ``moved``: the part of its tail and delay inside what it booked, which is own time,
    not the span's category; ``tail part``: the tail's share of that (queueing; the tail
    is the last part); ``slack``: what the bound leaves beyond the tail (>= 0; the
    caller clips it to what the span keeps), or None when the span has no bound (its
    wait was not measured)."""
    queued = moved = tail_part = 0
    if tail is not None or delay is not None:
        queued = max(0, as_int(tail) or 0) if tail is not None else 0
        off_cpu = max(0, as_int(delay) or 0) if delay is not None else 0
        moved = tail_overlap(queued + off_cpu, booked_start, booked_end, span_end)
        tail_part = queued if queued < moved else moved
    if bound is None:
        return moved, tail_part, None
    if booked_end - booked_start - moved <= 0:
        return moved, tail_part, 0
    slack = (as_int(bound) or 0) - queued
    return moved, tail_part, slack if slack > 0 else 0


def tail_overlap(tail_ns: int, booked_start: int, booked_end: int, span_end: int) -> int:
    """How much of a span's tail (its last ``tail_ns``, ending at ``span_end``) lies in
    the interval ``[booked_start, booked_end)`` it was booked."""
    if tail_ns <= 0:
        return 0
    start = span_end - tail_ns
    if start < booked_start:
        start = booked_start
    return booked_end - start if booked_end > start else 0


def classify_fields(span: Span, rules: Sequence[ClassifyRule]) -> ClassifiedFields | None:
    """The first rule's answer as plain fields (the built-in rule builds no record)."""
    for rule in rules:
        if rule is classify_standard:
            found = standard_fields(span)
            if found is not None:
                return found
            continue
        ruled = rule(span)
        if ruled is not None:
            return ruled.category, ruled.kind, ruled.system, ruled.target
    return None


# What a wait span's attributes say about its tail, delay and tail bound (raw values:
# ``TAIL_NS``, ``DELAY_NS``, ``TAIL_MAX_NS``), None when it carries none of them.
WaitExtras = tuple[AttributeValue | None, AttributeValue | None, AttributeValue | None] | None
MemoEntry = tuple[Attributes, ClassifiedFields | None, WaitExtras]
# (http.request.method, http.method, http.route) values -> (method, endpoint)
RequestNames = dict[tuple[AttributeValue, AttributeValue, AttributeValue], tuple[str, str]]
MEMO_LIMIT = 1 << 15  # entries (each holds its dict); then the memo starts over
NAMES_LIMIT = 1 << 12  # request names remembered; then they start over


class ClassifyMemo(dict[tuple[int, SpanKind, str, str], MemoEntry]):
    """What :func:`book_trace` remembers across traces: the built-in rule's answer per
    attribute dict, kind, name and service (the dict's items), and ``names``: a request's
    (method, endpoint) by its method and route values, for requests whose name depends
    on those alone (``endpoint.named_by_route``; ~18k instructions a request to work out)."""

    __slots__ = ("names",)

    def __init__(self) -> None:
        super().__init__()
        self.names: RequestNames = {}


def _memo_entry(
    span: Span, memo: ClassifyMemo
) -> tuple[Attributes, ClassifiedFields | None, WaitExtras]:
    """The built-in rule's answer for ``span`` and its wait extras, remembered per
    attribute dict OBJECT, kind, name and service (see ``book_trace``): both depend on
    those only. The memo holds the dict, so its id cannot be reused while the entry lives."""
    attrs = span.attributes
    key = (id(attrs), span.kind, span.name, span.service)
    hit = memo.get(key)
    if hit is not None and hit[0] is attrs:
        return hit
    tail, delay, bound = attrs.get(TAIL_NS), attrs.get(DELAY_NS), attrs.get(TAIL_MAX_NS)
    extras = None if tail is None and delay is None and bound is None else (tail, delay, bound)
    entry = (attrs, standard_fields(span), extras)
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = entry
    return entry


def _split_rules(
    rules: Sequence[ClassifyRule],
) -> tuple[Sequence[ClassifyRule], bool, Sequence[ClassifyRule]]:
    """(rules before the built-in one, is it there, rules after it)."""
    for i, rule in enumerate(rules):
        if rule is classify_standard:
            return rules[:i], True, rules[i + 1 :]
    return rules, False, ()


def _classify_memo(
    span: Span, rules: Sequence[ClassifyRule], memo: ClassifyMemo
) -> ClassifiedFields | None:
    """:func:`classify_fields` with the built-in rule's answer remembered (see ``book_trace``).

    Keyed by the attribute dict's id and checked by identity: the memo holds the dict,
    so its id cannot be reused by another object while the entry lives."""
    for rule in rules:
        if rule is classify_standard:
            found = _memo_entry(span, memo)[1]
            if found is not None:
                return found
            continue
        ruled = rule(span)
        if ruled is not None:
            return ruled.category, ruled.kind, ruled.system, ruled.target
    return None


def _nested_server_call(span: Span, booked: int) -> Call:
    """A downstream SERVER span as one network call of the enclosing request."""
    attrs = span.attributes
    method = http_method(attrs)
    route = route_template(span)
    if method and route.startswith(method + " "):
        route = route[len(method) + 1 :]
    if method:
        kind, system = CallKind.HTTP, "http"
    elif rpc := attr_str(attrs, "rpc.system"):
        kind, system = CallKind.RPC, rpc.lower()
    else:
        kind, system = CallKind.OTHER, ""
    separator = "" if route.startswith("/") else " "
    target = f"{method} {span.service}{separator}{route}".lstrip()
    return Call(
        category=Category.NETWORK,
        kind=kind,
        system=system,
        target=target,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        booked_ns=booked,
    )
