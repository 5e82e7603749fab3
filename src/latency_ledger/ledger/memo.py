"""Classification for booking: the rules' answer as plain fields, and the memo.

Contract: :func:`classify_fields` is the first rule's answer as
``(category, kind, system, target)`` (None: not a wait span). :class:`ClassifyMemo`,
kept across traces by the caller, remembers the built-in rule's answer (every rule's,
when every rule is memoizable: :func:`memoizable`) and a span's wait extras per
attribute dict OBJECT, kind, name and service, and request names by route; the answers
are the same with or without it. Bounded (``MEMO_LIMIT``,
``NAMES_LIMIT``): past that it starts over.
"""

from __future__ import annotations

from collections.abc import Sequence

from latency_ledger.classify import ClassifiedFields, classify_standard, standard_fields
from latency_ledger.ledger.contract import DELAY_NS, TAIL_MAX_NS, TAIL_NS
from latency_ledger.model import Attributes, AttributeValue, Span, SpanKind
from latency_ledger.plugins import ClassifyRule, is_memoizable


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

    __slots__ = ("names", "rules", "whole")

    def __init__(self) -> None:
        super().__init__()
        self.names: RequestNames = {}
        # the rules its entries answer for (None: not used yet), and whether the entries
        # hold every rule's answer (all memoizable) or the built-in rule's alone
        self.rules: Sequence[ClassifyRule] | None = None
        self.whole = False


def memoizable(rules: Sequence[ClassifyRule]) -> bool:
    """Whether every rule's answer depends on what the memo is keyed by alone (the
    built-in rule does; a plugin's rule says so: ``plugins.is_memoizable``)."""
    return all(rule is classify_standard or is_memoizable(rule) for rule in rules)


def bind_rules(memo: ClassifyMemo, rules: Sequence[ClassifyRule]) -> bool:
    """Make ``memo`` answer for ``rules`` (forgetting what it held for other rules);
    return whether its entries hold every rule's answer (:func:`memoizable`)."""
    if memo.rules is not rules:
        if memo.rules is not None and tuple(memo.rules) != tuple(rules):
            memo.clear()
        memo.rules = rules
        memo.whole = memoizable(rules)
    return memo.whole


def _memo_entry(
    span: Span, memo: ClassifyMemo
) -> tuple[Attributes, ClassifiedFields | None, WaitExtras]:
    """The built-in rule's answer for ``span`` (every rule's, when ``memo.whole``: see
    :func:`bind_rules`) and its wait extras, remembered per attribute dict OBJECT, kind,
    name and service (see ``book_trace``): both depend on those only. The memo holds the
    dict, so its id cannot be reused while the entry lives."""
    attrs = span.attributes
    key = (id(attrs), span.kind, span.name, span.service)
    hit = memo.get(key)
    if hit is not None and hit[0] is attrs:
        return hit
    tail, delay, bound = attrs.get(TAIL_NS), attrs.get(DELAY_NS), attrs.get(TAIL_MAX_NS)
    extras = None if tail is None and delay is None and bound is None else (tail, delay, bound)
    found = classify_fields(span, memo.rules or ()) if memo.whole else standard_fields(span)
    entry = (attrs, found, extras)
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


def classify_split(
    span: Span,
    split: tuple[Sequence[ClassifyRule], bool, Sequence[ClassifyRule]],
    memo: ClassifyMemo,
) -> tuple[ClassifiedFields | None, WaitExtras]:
    """The rules' answer for ``span`` and its wait extras, when not every rule is
    memoizable: ``split`` is :func:`_split_rules`' (rules before the built-in one, is it
    there, rules after it); the built-in rule's answer and the extras come from the memo."""
    before, standard, after = split
    found = None
    for rule in before:
        ruled = rule(span)
        if ruled is not None:
            found = ruled.category, ruled.kind, ruled.system, ruled.target
            break
    extras: WaitExtras
    if standard:
        _, standard_found, extras = _memo_entry(span, memo)
        if found is None:
            found = standard_found
    else:
        attrs = span.attributes
        extras = (attrs.get(TAIL_NS), attrs.get(DELAY_NS), attrs.get(TAIL_MAX_NS))
    if found is None and after:
        found = classify_fields(span, after)
    return found, extras


def _classify_memo(
    span: Span, rules: Sequence[ClassifyRule], memo: ClassifyMemo
) -> ClassifiedFields | None:
    """:func:`classify_fields` with the built-in rule's answer remembered (see ``book_trace``).

    Keyed by the attribute dict's id and checked by identity: the memo holds the dict,
    so its id cannot be reused by another object while the entry lives."""
    if bind_rules(memo, rules):
        return _memo_entry(span, memo)[1]
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
