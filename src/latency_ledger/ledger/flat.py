"""The flat-trace sweep: one request span and its direct children, booked in one pass.

Contract: :func:`_book_flat` books the common shape (one SERVER request span whose
parent is not in the trace, every other span its direct non-SERVER child, no span id
twice) with the same arithmetic, in the same order, as the general booking
(``booking.book_spans`` with one level), or returns None for any other shape; with a
:class:`~latency_ledger.ledger.memo.ClassifyMemo` only. ``tests/test_ledger_memo.py``
holds it to ``book_trace`` without a memo on random traces of every shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from latency_ledger.classify import ClassifiedFields
from latency_ledger.ledger.contract import (
    _TOTALS,
    MAX_WALL_NS,
    SPANS_KEPT,
    _is_false,
)
from latency_ledger.ledger.memo import (
    ClassifyMemo,
    WaitExtras,
    _memo_entry,
    _split_rules,
    bind_rules,
    classify_split,
)
from latency_ledger.ledger.own_time import ledger_from_totals, split_own_time
from latency_ledger.ledger.records import BookedTrace, new_call
from latency_ledger.ledger.request import request_record
from latency_ledger.ledger.waits import wait_tail
from latency_ledger.model import ROW_END, ROW_START, CallRow, Category, Span, SpanKind
from latency_ledger.plugins import ClassifyRule

_ROW_ORDER = itemgetter(ROW_START, ROW_END)


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
    # None: the memo answers for every rule (the usual case); else the rules' parts
    split = None if bind_rules(memo, rules) else _split_rules(rules)
    database = network = own = tails = 0
    database_slack = network_slack = unbounded = 0
    database_category = Category.DATABASE
    rows: list[CallRow] = []
    add_call = rows.append
    memo_get = memo.get
    frontier = end
    taken = 0
    found: ClassifiedFields | None
    extras: WaitExtras
    for k_end, k_start, _, kid in siblings:
        won_end = k_end if k_end < frontier else frontier
        if won_end < k_start:
            won_end = k_start
        elif k_start < frontier:
            frontier = k_start
        length = won_end - k_start
        taken += length
        if split is None:
            kid_attrs = kid.attributes
            hit = memo_get((id(kid_attrs), kid.kind, kid.name, kid.service))
            if hit is None or hit[0] is not kid_attrs:
                hit = _memo_entry(kid, memo)
            _, found, extras = hit
        else:
            found, extras = classify_split(kid, split, memo)
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
