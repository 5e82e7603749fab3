"""The records every stage passes to the next.

Contract: plain frozen data, no behaviour beyond small derived properties, and no
imports from the rest of the package. Times are ``int`` nanoseconds (``*_ns``), shares
are ``*_fraction`` in [0, 1]. Milliseconds and percentages exist only in ``render/``.

Flow: ``read`` yields :class:`Trace` -> ``ledger`` books each SERVER span into a
:class:`Request` -> ``aggregate`` and ``findings`` reduce requests per endpoint into
:class:`EndpointStats` -> ``verdict`` adds a :class:`Verdict` -> ``render`` writes a
:class:`Report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final

AttributeValue = str | int | float | bool | tuple["AttributeValue", ...] | None
Attributes = Mapping[str, AttributeValue]


class SpanKind(IntEnum):
    """OTLP ``Span.SpanKind`` numbering."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class Category(StrEnum):
    """Where a nanosecond of a request went (DESIGN.md, "The ledger")."""

    DATABASE = "database"
    NETWORK = "network"
    INTERPRETER = "interpreter"
    NATIVE = "native"  # CPU inside compiled extensions (bcrypt, pydantic-core, zlib...)
    WAITING = "waiting"
    APP = "app"  # own time with CPU not measured: interpreter + waiting, an upper bound


# Ledger keys as they appear in reports, by mode.
MEASURED_PARTS: tuple[str, ...] = ("database", "network", "interpreter", "native", "waiting")
BOUND_PARTS: tuple[str, ...] = ("database", "network", "app")


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """One OTLP span, normalized: lowercase hex ids, ``""`` for no parent.

    ``resource`` is the attributes of the resource that reported the span (OTLP's
    ``Resource``; Jaeger's ``process`` tags; Zipkin's ``localEndpoint``), shared by all
    spans of that resource: ``service.name``, ``telemetry.sdk.language``,
    ``process.runtime.*``... ``service`` is its ``service.name`` (or a placeholder).
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    is_error: bool
    attributes: Attributes
    service: str
    resource: Attributes = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """All spans of one trace id that the reader saw together."""

    trace_id: str
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    """One request's wall time split into parts that add up to it exactly.

    With CPU measured, ``interpreter_ns + native_ns + waiting_ns`` is the own time and
    ``app_ns`` is 0; without, ``app_ns`` holds all own time and the other three are 0.
    The own CPU is ``interpreter_ns`` (Python bytecode: what a faster runtime shrinks)
    plus ``native_ns`` (inside compiled extensions: a port barely changes it).
    ``native_measured``: ``native_ns`` comes from this request's own profile; a request
    that was not profiled has ``native_ns`` 0 here, and aggregation estimates its split
    from the endpoint's profiled requests (``EndpointStats.native``).
    ``queueing_ns`` is the part of ``waiting_ns`` spent queued behind other work.
    """

    database_ns: int
    network_ns: int
    interpreter_ns: int = 0
    waiting_ns: int = 0
    app_ns: int = 0
    queueing_ns: int = 0
    cpu_measured: bool = False
    native_ns: int = 0
    native_measured: bool = False
    native_max_ns: int = 0  # the profile's upper bound on native_ns; not a part
    # Not parts either: bounds on the parts above. Of ``database_ns`` (``network_ns``), at
    # most this may have been waiting for the event loop or the interpreter lock after
    # the I/O finished (the wait spans' measured bounds less the tails booked as queueing,
    # collect/tails.py); ``unbounded_io_ns``: database and network time booked from wait
    # spans whose end was not measured (timed by their caller, or recorded by other
    # tools), with no such bound.
    database_wait_max_ns: int = 0
    network_wait_max_ns: int = 0
    unbounded_io_ns: int = 0
    # CPU that threads a native library started during the request burned (argon2's
    # lanes), as attributed to it, and the bound on that; the wall time the request
    # waited for them, up to that CPU, is booked ``native`` (``native_threads_booked_ns``
    # of ``native_ns``) instead of ``waiting``
    native_threads_ns: int = 0
    native_threads_max_ns: int = 0
    native_threads_booked_ns: int = 0

    @property
    def total_ns(self) -> int:
        return (
            self.database_ns
            + self.network_ns
            + self.interpreter_ns
            + self.native_ns
            + self.waiting_ns
            + self.app_ns
        )

    def parts(self) -> dict[str, int]:
        """The report's ledger keys for this mode, in report order."""
        if self.cpu_measured:
            return {
                "database": self.database_ns,
                "network": self.network_ns,
                "interpreter": self.interpreter_ns,
                "native": self.native_ns,
                "waiting": self.waiting_ns,
            }
        return {"database": self.database_ns, "network": self.network_ns, "app": self.app_ns}


class CallKind(StrEnum):
    QUERY = "query"  # a database statement
    POOL = "pool"  # waiting for a pooled database connection
    CONNECT = "connect"  # opening a new database connection (there may be no pool)
    HTTP = "http"
    RPC = "rpc"
    MESSAGING = "messaging"
    CACHE = "cache"
    CLIENT_IO = "client_io"  # ASGI receive/send of the request itself
    OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One classified wait inside a request (a DB statement, an outgoing call...).

    ``target`` is the raw statement text (already sanitized by whoever recorded it)
    or ``"METHOD host/route"``; normalization for grouping happens in ``findings``.
    ``booked_ns`` is what the overlap rule charged to this call, <= its duration.
    """

    category: Category
    kind: CallKind
    system: str
    target: str
    start_ns: int
    end_ns: int
    booked_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


# A Call as a plain tuple of its fields, in their order: how the offline ledger's flat
# sweep hands calls to the findings (ledger.book_trace_rows), without a record each.
CallRow = tuple[Category, CallKind, str, str, int, int, int]
# The indexes of its fields (Final: a type checker types each index's field).
ROW_KIND: Final = 1
ROW_SYSTEM: Final = 2
ROW_TARGET: Final = 3
ROW_START: Final = 4
ROW_END: Final = 5
ROW_BOOKED: Final = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementTallies:
    """One request's database statements as the in-app collector counted them, kept or
    not (``ledger.statement_count`` and the ``ledger.statement.*`` arrays on its SERVER
    span): per distinct statement, keyed by the fingerprint of its normalized text
    (``sql.statement_fingerprint``), its calls, the time booked to them and its longest
    call. The parallel tuples have one entry per statement; fingerprint 0 holds the
    statements past the collector's cap, folded together. ``texts``: the normalized
    text per entry where the collector wrote it ("" where not: it writes each text once
    in a while, kept trees give the rest)."""

    count: int  # every statement the request ran, folded ones included
    fingerprints: tuple[int, ...] = ()
    calls: tuple[int, ...] = ()
    booked_ns: tuple[int, ...] = ()
    longest_ns: tuple[int, ...] = ()
    texts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One booked request: a SERVER span, its ledger and the waits inside it."""

    trace_id: str
    span_id: str
    service: str
    method: str
    endpoint: str  # "GET /orders/{order_id}": method + route template, never a raw path
    start_ns: int
    wall_ns: int
    status_code: int | None
    is_error: bool
    ledger: Ledger
    calls: tuple[Call, ...] = ()
    from_totals: bool = False  # booked from ``ledger.*`` totals, child spans not kept
    collector_overhead_ns: int = 0  # the in-app collector's own cost, when recorded
    # the chance this request's child spans had of being kept (``ledger.keep_probability``,
    # recorded by a sampling collector); 1.0 when unknown: every tree kept, or a sampler
    # that did not say, whose kept trees then stand for themselves only
    keep_probability: float = 1.0
    # "" for a request/response call; else the kind of long-lived stream it is
    # ("grpc stream", "websocket", "server-sent events"), kept out of percentiles
    stream: str = ""
    # its statements as counted in the app for every request (None: not counted, e.g.
    # traces from other tools; findings then estimate from the kept trees alone)
    statements: StatementTallies | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """A cheaper fix than a rewrite, with what it costs per affected request."""

    kind: str  # "n_plus_one" | "slow_statement" | "chatty_calls" | "pool_wait"
    detail: str
    target: str  # the normalized statement or "METHOD host/route"
    count_per_request: float
    ns_per_request: int  # mean cost in the requests where it occurs
    requests_fraction: float  # share of the endpoint's requests where it occurs
    total_ns: int = 0
    count: int = 0
    p50_ns: int = 0
    p99_ns: int = 0
    concurrent: bool = False
    # 95% half-width of the per-request cost, relative to it (0.1: +-10%): the figures
    # are estimated from the kept trees weighted by their keep probability; 0.0 when
    # every tree behind them was certain to be kept
    margin_fraction: float = 0.0
    sampled_requests: int = 0  # kept requests the figures come from
    # count, cost and share counted over every request (the collector's per-request
    # statement tallies), not estimated from kept trees: then margin_fraction is 0 and
    # sampled_requests / p50_calls are what the p50 and p99 rest on
    counted: bool = False
    p50_calls: int = 0  # kept calls the p50 and p99 come from
    # What the fix can remove, mean over the requests where it occurs (<= ns_per_request);
    # None: all of it. Batching repeated calls leaves one call (see findings).
    fixable_ns_per_request: int | None = None

    @property
    def saving_ns_per_request(self) -> int:
        """What the fix saves at most, as a mean over all the endpoint's requests."""
        fixable = self.ns_per_request
        if self.fixable_ns_per_request is not None:
            fixable = min(fixable, self.fixable_ns_per_request)
        return int(fixable * self.requests_fraction)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRuntime:
    """A runtime to port to and how much faster it runs interpreter work."""

    name: str
    factor_low: float
    factor_typical: float
    factor_high: float
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Projection:
    """Amdahl's law for one target on one endpoint, at the typical factor."""

    target: TargetRuntime
    p50_ns: int
    p99_ns: int
    p50_saving_ns: int
    p99_saving_ns: int
    p50_saving_fraction: float
    p99_saving_fraction: float
    p50_saving_range_ns: tuple[int, int]  # at factor_low, factor_high
    requests_per_core: float | None  # projected, when CPU was measured
    mean_saving_ns: int = 0  # the mean saving over all requests (fix-first compares it)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    label: str  # "dont_migrate" | "marginal" | "migration_could_pay"
    confidence: str  # "low" | "medium" | "high"
    summary: str  # one sentence, with its numbers, plain text
    upper_bound: bool  # CPU not measured: savings are upper bounds
    projections: tuple[Projection, ...]
    fixes: tuple[Finding, ...]  # cheaper fixes, ranked by time saved
    cpu_per_request_ns: int | None  # the mean, over all the endpoint's requests
    requests_per_core: float | None
    reasons: tuple[str, ...] = ()
    runtime: str = "unknown"  # the runtime judged (runtime.RUNTIME_NAMES key)
    runtime_assumed: bool = False  # none was recorded: judged as CPython
    not_offered: tuple[str, ...] = ()  # targets left out, each with why


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSummary:
    """Where sampled interpreter time goes, by bucket (framework, orm, app...).

    ``native_functions``: the compiled functions native CPU was sampled in, each with its
    share of the endpoint's native CPU (mean over profiles that saw native CPU)."""

    samples: int
    bucket_fraction: Mapping[str, float]
    top_functions: tuple[tuple[str, float], ...] = ()
    native_functions: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NativeShare:
    """An endpoint's own CPU split into interpreter and native, and how sure it is.

    Measured on ``profiled`` requests (their profile's C-leaf samples, a lower bound per
    request; ``collect/profiling.py``), extended to the ``estimated`` others as the share
    ``cpu_fraction`` of each one's CPU. ``cpu_fraction_low``/``_high`` bound that share:
    the measurement's own bound (booked vs upper per-sample native CPU) widened by two
    standard errors of the profiled requests' mean native CPU.
    """

    profiled: int
    estimated: int
    cpu_fraction: float
    cpu_fraction_low: float
    cpu_fraction_high: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NativeThreads:
    """CPU that threads native libraries started burned for an endpoint's requests (their
    calling thread's clock does not see it; collect/cpu.py), means over all its requests:
    as charged (a request alone in flight gets all the process's CPU no Python thread
    ran meanwhile, one among several an even share) and the bound on that (all of it)."""

    requests: int  # requests charged any
    cpu_ns_per_request: int
    max_ns_per_request: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointStats:
    """Aggregated requests of one endpoint (or of everything, for ``overall``).

    ``latency_ns`` has keys p50, p95, p99, mean. ``ledger_ns`` has the same keys, each a
    parts dict (``Ledger.parts`` keys) that sums to that key's latency.
    """

    service: str
    endpoint: str
    count: int
    errors: int
    cpu_measured: bool
    latency_ns: Mapping[str, int]
    ledger_ns: Mapping[str, Mapping[str, int]]
    queueing_ns: Mapping[str, int] = field(default_factory=dict)  # part of waiting, by key
    from_totals: int = 0  # requests booked from ledger.* totals
    runtime: str = "unknown"  # the service's runtime; "mixed" for overall across several
    findings: tuple[Finding, ...] = ()
    verdict: Verdict | None = None
    profile: ProfileSummary | None = None
    native: NativeShare | None = None  # None: no profile measured this endpoint's split
    # By ``latency_ns`` key, with CPU measured: of the ledger's database (network) part, how
    # much may still be waiting for the event loop or the interpreter lock (the tails'
    # bounds less what was booked as queueing), and how much of the two came from wait
    # spans whose end was not measured ("unbounded"); scaled like the parts, each at most
    # the part it bounds. Empty without CPU measured (no tail is measured there).
    wait_bounds_ns: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    native_threads: NativeThreads | None = None  # None: no request was charged any
    # 0.0: percentiles are exact (nearest rank); else the relative error of the sketch
    # they were read from (``sketch``: groups of more than EXACT_LIMIT requests)
    percentile_error_fraction: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStats:
    """Long-lived streams of one endpoint: listed, never in percentiles or verdicts."""

    service: str
    endpoint: str
    kind: str  # "grpc stream" | "websocket" | "server-sent events"
    count: int
    errors: int
    median_ns: int  # how long a stream stayed open
    max_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSummary:
    files: int
    spans: int
    traces: int
    requests: int
    skipped: Mapping[str, int]  # reason -> count
    problems: tuple[str, ...] = ()  # first few one-line messages, "file:line: problem"
    problem_count: int = 0  # all such messages, shown or not (>= len(problems))
    collector: Mapping[str, int] = field(default_factory=dict)  # dropped spans, errors...
    # the in-app collector's own measured cost, mean per request that recorded it
    collector_overhead_ns: int | None = None
    # the process's CPU and the CPU booked to requests over the collector's windows,
    # summed over processes (collect/cpu.py); 0 and 0: not recorded
    process_cpu_ns: int = 0
    booked_cpu_ns: int = 0
    # each plugin's share of collector_overhead_ns (its wrappers and spans), mean over
    # the same requests
    plugin_overhead_ns: Mapping[str, int] = field(default_factory=dict)
    # requests whose ledger a ClickHouse source computed in SQL (the rest: in Python)
    booked_in_database: int = 0

    @property
    def unbooked_cpu_fraction(self) -> float | None:
        """The share of the process's CPU no request was booked: None when not recorded."""
        if self.process_cpu_ns <= 0:
            return None
        return min(1.0, max(0.0, 1 - self.booked_cpu_ns / self.process_cpu_ns))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRuntime:
    """The runtime one service runs, and what says so."""

    service: str
    runtime: str  # a runtime.RUNTIME_NAMES key, "unknown" when nothing says
    version: str = ""
    detected_from: str = ""  # resource attribute, "--runtime", or "" (unknown)
    requests: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    inputs: InputSummary
    overall: EndpointStats
    endpoints: tuple[EndpointStats, ...]
    streams: tuple[StreamStats, ...] = ()
    services: tuple[ServiceRuntime, ...] = ()
