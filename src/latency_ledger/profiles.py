"""Per-endpoint totals of the pyinstrument samples the collector puts on SERVER spans.

Contract: the collector writes ``ledger.profile`` on a profiled request's SERVER span, a
small JSON object ``{"samples": N, "buckets": {"framework": w, ...}, "top": [[fn, w],
...]}`` where ``w`` is a weight (seconds or sample counts, the same unit within one
object). ``ProfileAccumulator`` sums the buckets' shares per endpoint so every profiled
request counts once, whatever its length. The attribute is attacker-controlled text:
anything malformed is counted in ``errors`` and ignored, never raised.

The native split (``collect/profiling.py``) adds ``"cpu"``, ``"native"``, ``"native_max"``
(seconds of CPU) and ``"native_top"`` (``[[function, seconds], ...]``).
:func:`profile_native_ns` reads the request's native CPU for the ledger;
``ProfileAccumulator`` ranks the native functions per endpoint.

Which bucket a sampled frame belongs to is decided here too (:func:`library_bucket`,
:func:`frame_bucket`, :func:`stack_bucket`: pure functions of file paths, used in-app by
``collect/profiling.py`` when it summarizes a pyinstrument session). A sample goes to the
innermost frame that says something: a known library or part of one decides, generic
standard-library code (``functools``, ``threading``...) defers to its caller, and code
outside the interpreter's and the virtualenv's directories is ``application``.
Django: ``django.db`` is ``orm`` (its ``backends`` package, the driver adapter, is
``database_driver``), ``django.template``/``templatetags`` and Jinja2 are their own
``templates`` bucket (rendering is what the issue asks to see, and a template walking a
relation is where N+1s hide), ``django.forms``, ``django.core.serializers`` and
validators are ``validation_serialization``, and the rest of Django, asgiref, gunicorn,
uvicorn and daphne are ``framework``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from latency_ledger.endpoint import endpoint_name
from latency_ledger.model import AttributeValue, ProfileSummary, Span

MAX_PROFILE_CHARS = 64 * 1024
TOP_FUNCTIONS = 8
NS_PER_S = 1_000_000_000
MAX_NATIVE_S = 2**62 // NS_PER_S

BUCKETS = (
    "framework",
    "templates",
    "validation_serialization",
    "orm",
    "database_driver",
    "application",
    "other",
)
# Parts of a library whose bucket differs from the library's: path prefixes under a
# library root, longest first wins (checked before PACKAGE_BUCKETS).
PART_BUCKETS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {
            "django/db/backends/": "database_driver",
            "django/db/": "orm",
            "django/template/": "templates",
            "django/templatetags/": "templates",
            "django/forms/": "validation_serialization",
            "django/core/serializers/": "validation_serialization",
            "django/core/validators.py": "validation_serialization",
            "django/contrib/postgres/forms/": "validation_serialization",
            "rest_framework/serializers.py": "validation_serialization",
            "rest_framework/fields.py": "validation_serialization",
            "rest_framework/renderers.py": "validation_serialization",
            "rest_framework/parsers.py": "validation_serialization",
            "sqlalchemy/orm/": "orm",
            "sqlalchemy/sql/": "orm",
        }.items(),
        key=lambda item: -len(item[0]),
    )
)
# Top-level package (or stdlib module) -> bucket.
PACKAGE_BUCKETS: dict[str, str] = {
    # web frameworks and servers
    "starlette": "framework",
    "fastapi": "framework",
    "uvicorn": "framework",
    "anyio": "framework",
    "h11": "framework",
    "httptools": "framework",
    "uvloop": "framework",
    "asyncio": "framework",
    "selectors": "framework",
    "litestar": "framework",
    "hypercorn": "framework",
    "django": "framework",
    "asgiref": "framework",
    "gunicorn": "framework",
    "daphne": "framework",
    "twisted": "framework",
    "waitress": "framework",
    "whitenoise": "framework",
    "rest_framework": "framework",
    "ninja": "framework",
    "flask": "framework",
    "werkzeug": "framework",
    "opentelemetry": "framework",
    "latency_ledger": "framework",
    "latency_ledger_django": "framework",
    "latency_ledger_plugin_base": "framework",
    # templates
    "jinja2": "templates",
    "markupsafe": "templates",
    "mako": "templates",
    # validation and serialization
    "pydantic": "validation_serialization",
    "pydantic_core": "validation_serialization",
    "json": "validation_serialization",
    "msgspec": "validation_serialization",
    "orjson": "validation_serialization",
    "ujson": "validation_serialization",
    "marshmallow": "validation_serialization",
    # the rest of SQLAlchemy (engine, pool, dialects) and drivers
    "sqlalchemy": "database_driver",
    "psycopg": "database_driver",
    "psycopg2": "database_driver",
    "psycopg_binary": "database_driver",
    "psycopg_pool": "database_driver",
    "asyncpg": "database_driver",
    "sqlite3": "database_driver",
    "aiosqlite": "database_driver",
    "pymysql": "database_driver",
    "MySQLdb": "database_driver",
    "redis": "database_driver",
}


def library_bucket(rest: str) -> str | None:
    """The bucket of a file under a library root (``django/db/models/query.py`` -> ``orm``),
    or None when neither a known part nor a known package decides."""
    for prefix, bucket in PART_BUCKETS:
        if rest.startswith(prefix):
            return bucket
    top = rest.split("/", 1)[0].removesuffix(".py")
    return PACKAGE_BUCKETS.get(top)


def frame_bucket(file_path: str, roots: Sequence[str]) -> str | None:
    """The bucket a frame's file decides, or None for generic standard-library code.

    ``roots``: library directories (each ending in ``/``), longest first: the
    interpreter's standard library and the site-packages directories.
    """
    if not file_path or file_path.startswith("<"):
        return "application" if file_path in ("<string>", "<stdin>") else None
    for root in roots:
        if file_path.startswith(root):
            bucket = library_bucket(file_path[len(root) :])
            if bucket is not None:
                return bucket
            return None if "site-packages" not in root and "dist-packages" not in root else "other"
    return "application"


def stack_bucket(stack: Sequence[str], roots: Sequence[str]) -> str:
    """One pyinstrument sample's bucket: its call stack, outermost first, each frame
    ``function NUL file NUL line`` (``[...]`` pseudo-frames are skipped)."""
    for identifier in reversed(stack):
        if identifier.startswith("["):
            continue
        parts = identifier.split("\x00")
        found = frame_bucket(parts[1] if len(parts) > 1 else "", roots)
        if found is not None:
            return found
    return "other"


class ProfileAccumulator:
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._top: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._native: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._native_profiles: Counter[tuple[str, str]] = Counter()
        self._profiles: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, span: Span, raw: AttributeValue) -> None:
        parsed = _parse(raw)
        if parsed is None:
            self.errors["invalid_profile_attribute"] += 1
            return
        buckets, top, native_top = parsed
        total = sum(buckets.values())
        if total <= 0:
            return
        key = (span.service, endpoint_name(span)[1])
        self._profiles[key] += 1
        for into, weights in ((self._buckets[key], buckets), (self._top[key], top)):
            for name, weight in weights.items():
                into[name] = into.get(name, 0.0) + weight / total
        native_total = sum(native_top.values())
        if native_total > 0:
            self._native_profiles[key] += 1
            into = self._native[key]
            for name, weight in native_top.items():
                into[name] = into.get(name, 0.0) + weight / native_total

    def merge(self, other: ProfileAccumulator) -> None:
        """Add ``other``'s profiles."""
        for mine, theirs in (
            (self._buckets, other._buckets),
            (self._top, other._top),
            (self._native, other._native),
        ):
            for key, weights in theirs.items():
                into = mine[key]
                for name, weight in weights.items():
                    into[name] = into.get(name, 0.0) + weight
        self._native_profiles.update(other._native_profiles)
        self._profiles.update(other._profiles)
        self.errors.update(other.errors)

    def summary(self, service: str, endpoint: str) -> ProfileSummary | None:
        key = (service, endpoint)
        count = self._profiles.get(key, 0)
        if not count:
            return None
        buckets = self._buckets[key]
        top = self._top[key]
        native_count = self._native_profiles.get(key, 0)
        native = self._native.get(key, {})
        return ProfileSummary(
            samples=count,
            bucket_fraction={
                name: share / count for name, share in sorted(buckets.items(), key=_by_weight)
            },
            top_functions=tuple(
                (name, share / count)
                for name, share in sorted(top.items(), key=_by_weight)[:TOP_FUNCTIONS]
            ),
            native_functions=tuple(
                (name, share / native_count)
                for name, share in sorted(native.items(), key=_by_weight)[:TOP_FUNCTIONS]
            ),
        )


def _by_weight(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def _parse(
    raw: AttributeValue,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]] | None:
    doc = _document(raw)
    raw_buckets = doc.get("buckets") if doc is not None else None
    if doc is None or not isinstance(raw_buckets, dict):
        return None
    buckets = _weights(raw_buckets.items())
    if buckets is None:
        return None
    top = _pairs(doc.get("top", []))
    native_top = _pairs(doc.get("native_top", []))
    if top is None or native_top is None:
        return None
    return buckets, top, native_top


def _document(raw: AttributeValue) -> dict[str, object] | None:
    if not isinstance(raw, str) or len(raw) > MAX_PROFILE_CHARS:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _pairs(raw: object) -> dict[str, float] | None:
    if not isinstance(raw, list):
        return None
    return _weights(tuple(row) for row in raw if isinstance(row, list) and len(row) == 2)


def profile_native_ns(raw: AttributeValue) -> tuple[int, int, int | None] | None:
    """``(booked, upper, seen)`` native CPU in ns from a ``ledger.profile`` attribute:
    the booked (lower) and upper native figures, and the CPU the profile saw (None when
    it does not say); None when the profile has no native split (older collectors,
    other tools, malformed)."""
    if raw is None:
        return None
    doc = _document(raw)
    if doc is None:
        return None
    seconds = _weights((name, doc.get(name)) for name in ("native", "native_max"))
    if seconds is None:
        return None
    seen = _weights([("cpu", doc["cpu"])]) if "cpu" in doc else None
    booked = _ns(seconds["native"])
    return (
        booked,
        max(booked, _ns(seconds["native_max"])),
        _ns(seen["cpu"]) if seen is not None else None,
    )


def _ns(seconds: float) -> int:
    # capped at MAX_NATIVE_S (~146 years, the ledger's longest request) so no float
    # given here overflows an int64 column
    return int(min(seconds, MAX_NATIVE_S) * NS_PER_S)


def _weights(items: Iterable[tuple[object, ...]]) -> dict[str, float] | None:
    out: dict[str, float] = {}
    for name, weight in items:
        if not isinstance(name, str) or isinstance(weight, bool):
            return None
        if not isinstance(weight, int | float) or not weight >= 0 or weight == float("inf"):
            return None
        out[name] = out.get(name, 0.0) + float(weight)
    return out
