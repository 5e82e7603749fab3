"""Per-endpoint totals of the pyinstrument samples the collector puts on SERVER spans.

Contract: the collector writes ``ledger.profile`` on a profiled request's SERVER span, a
small JSON object ``{"samples": N, "buckets": {"framework": w, ...}, "top": [[fn, w],
...]}`` where ``w`` is a weight (seconds or sample counts, the same unit within one
object). ``ProfileAccumulator`` sums the buckets' shares per endpoint so every profiled
request counts once, whatever its length. The attribute is attacker-controlled text:
anything malformed is counted in ``errors`` and ignored, never raised.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable

from latency_ledger.endpoint import endpoint_name
from latency_ledger.model import AttributeValue, ProfileSummary, Span

MAX_PROFILE_CHARS = 64 * 1024
TOP_FUNCTIONS = 8


class ProfileAccumulator:
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._top: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._profiles: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, span: Span, raw: AttributeValue) -> None:
        parsed = _parse(raw)
        if parsed is None:
            self.errors["invalid_profile_attribute"] += 1
            return
        buckets, top = parsed
        total = sum(buckets.values())
        if total <= 0:
            return
        key = (span.service, endpoint_name(span)[1])
        self._profiles[key] += 1
        for into, weights in ((self._buckets[key], buckets), (self._top[key], top)):
            for name, weight in weights.items():
                into[name] = into.get(name, 0.0) + weight / total

    def summary(self, service: str, endpoint: str) -> ProfileSummary | None:
        key = (service, endpoint)
        count = self._profiles.get(key, 0)
        if not count:
            return None
        buckets = self._buckets[key]
        top = self._top[key]
        return ProfileSummary(
            samples=count,
            bucket_fraction={
                name: share / count for name, share in sorted(buckets.items(), key=_by_weight)
            },
            top_functions=tuple(
                (name, share / count)
                for name, share in sorted(top.items(), key=_by_weight)[:TOP_FUNCTIONS]
            ),
        )


def _by_weight(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def _parse(raw: AttributeValue) -> tuple[dict[str, float], dict[str, float]] | None:
    if not isinstance(raw, str) or len(raw) > MAX_PROFILE_CHARS:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("buckets"), dict):
        return None
    buckets = _weights(doc["buckets"].items())
    top_raw = doc.get("top", [])
    if buckets is None or not isinstance(top_raw, list):
        return None
    pairs = [tuple(row) for row in top_raw if isinstance(row, list) and len(row) == 2]
    top = _weights(pairs)
    if top is None:
        return None
    return buckets, top


def _weights(items: Iterable[tuple[object, ...]]) -> dict[str, float] | None:
    out: dict[str, float] = {}
    for name, weight in items:
        if not isinstance(name, str) or isinstance(weight, bool):
            return None
        if not isinstance(weight, int | float) or not weight >= 0 or weight == float("inf"):
            return None
        out[name] = out.get(name, 0.0) + float(weight)
    return out
