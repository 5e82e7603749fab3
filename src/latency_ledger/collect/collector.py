"""The collector: one object holding the process-wide pieces.

Contract: a :class:`Collector` joins the app's SDK ``TracerProvider`` (or sets one up),
adds a :class:`~latency_ledger.collect.processor.LedgerSpanProcessor`, switches on the
plugins' instrumentations and owns the :class:`~latency_ledger.collect.hooks.Hooks` and
the export :class:`~latency_ledger.collect.export.SpanSink`. The middleware calls
:meth:`begin` and :meth:`finish` around each request; :meth:`finish` books the request's
ledger with the offline ledger's code, puts the ``ledger.*`` totals on the SERVER span,
decides whether the child spans are kept (``keep.py``), and ends the span. Nothing here
raises into the app: failures are counted in :class:`CollectorStats`. :meth:`shutdown`
flushes and undoes everything.

The plugins get :attr:`Collector.span_provider` (see ``light.py``): inside a request their
child spans are light objects, booked straight into the request's ledger and turned
into ``ReadableSpan`` objects only when the request is kept. SDK spans (from the app's
own tracers, or any span when the provider has a processor besides ours) are buffered by
the processor (``processor.py``); :meth:`finish` books both kinds together, with the
helpers in ``finishing.py`` (the offline ledger's rule, native threads' CPU, the export
thread's share, ``url.path``). Plugins and classification rules are loaded once, by
``loading.py``. Those modules name the collector for typing only: nothing there imports
this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Callable, Mapping
from random import getrandbits
from time import thread_time_ns, time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace.propagation import _SPAN_KEY

from latency_ledger.collect.accounting import (
    CURRENT,
    LoopState,
)
from latency_ledger.collect.config import CollectConfig, disabled_plugins
from latency_ledger.collect.cpu import FlightClock, ProcessWindow
from latency_ledger.collect.encode import ServerFields, encode_server_json
from latency_ledger.collect.export import CollectorStats, SpanSink, otlp_endpoint_exporter
from latency_ledger.collect.files import JsonLinesFileExporter
from latency_ledger.collect.finishing import (
    EXPORT_EVERY,
    address,
    book_through_the_ledger,
    export_share_ns,
    recorded_path,
    steps_cost_ns,
    whole_cpu,
)
from latency_ledger.collect.hooks import Hooks
from latency_ledger.collect.keep import KeepRule
from latency_ledger.collect.light import (
    CONTEXT_VAR,
    LightTracerProvider,
    current_context,
)
from latency_ledger.collect.light_booking import (
    book_light,
    materialize,
)
from latency_ledger.collect.loading import load_rules_and_plugins
from latency_ledger.collect.processor import (
    LedgerSpanProcessor,
    RequestRecord,
    with_tail,
)
from latency_ledger.collect.profiling import ProfileSampler
from latency_ledger.collect.selfcost import Meter
from latency_ledger.collect.spans import (
    ERROR_STATUS,
    SAMPLED,
    SCOPE,
    UNSET_STATUS,
    ServerSpan,
    calibrate_clock_read,
    calibrate_step_cost,
    exception_event,
    parent_context,
    route_template,
)
from latency_ledger.collect.statements import StatementCounter, tally_calls
from latency_ledger.collect.steps import STEPS
from latency_ledger.collect.tails import (
    TypicalIo,
)
from latency_ledger.collect.threads import ProcessCpu
from latency_ledger.ledger import split_measured

_log = logging.getLogger("latency_ledger.collect")

_STATUS_UNSET = trace.StatusCode.UNSET


# Every collector not yet garbage: a forked child re-arms each (Collector.after_fork).
_LIVE: weakref.WeakSet[Collector] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for collector in list(_LIVE):
        try:
            collector.after_fork()
        except Exception as exc:  # never into the server's fork
            _log.warning("latency-ledger: re-arming a collector after fork failed: %r", exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _service_name(config: CollectConfig, app_title: str | None, env: Mapping[str, str]) -> str:
    return config.service_name or env.get("OTEL_SERVICE_NAME") or app_title or "app"


class Collector:
    def __init__(
        self,
        config: CollectConfig,
        *,
        app_title: str | None = None,
        exporter: Any = None,
        provider: Any = None,
        load_plugins: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.config = config
        self.stats = CollectorStats()
        self.hooks = Hooks()
        self.keeper = KeepRule(config)
        self._classified: dict[tuple[Any, ...], tuple[Any, Any]] = {}  # see book_light
        self._paths: dict[str, str] = {}  # raw path -> what url.path records
        self.typical_io = TypicalIo()  # each statement's I/O time when uncontended (tails.py)
        self.flight = FlightClock()  # native libraries' threads' CPU per request (cpu.py)
        self.cpu_window = ProcessWindow()  # the process's CPU against what requests booked
        # each request's statements, counted for the analyzer (statements.py)
        self.statements = StatementCounter()
        # the export thread's CPU clock when last read: (thread ident, ns, requests then)
        self._export_seen: tuple[int | None, int, int] = (None, 0, 0)
        self._export_per_request = 0
        self.closed = False
        global_provider = trace.get_tracer_provider()
        self.own_provider = False
        if provider is None and isinstance(global_provider, TracerProvider):
            provider = global_provider  # join the app's provider
        if provider is None:
            service = _service_name(config, app_title, env)
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            self.own_provider = True
            if config.set_global_provider:
                trace.set_tracer_provider(provider)
        self.provider = provider
        # what the plugins' instrumentations get: light child spans where possible (each
        # plugin its own, see provider_for, so what its spans cost is its cost)
        self.span_provider = LightTracerProvider(provider, self)
        self.disabled_plugins = disabled_plugins(config, env)
        self.service = str(provider.resource.attributes.get("service.name", "app"))
        # an exporter we make, we make again in a forked child (see after_fork)
        self._make_exporter: Callable[[], Any] | None = None
        if exporter is None:
            factory = otlp_endpoint_exporter(env)
            self._make_exporter = factory or (
                lambda: JsonLinesFileExporter(
                    config.output_dir,
                    max_file_bytes=config.max_file_bytes,
                    max_total_bytes=config.max_total_bytes,
                    max_files=config.max_files,
                )
            )
            exporter = self._make_exporter()
        self.sink = SpanSink(
            exporter,
            stats=self.stats,
            max_spans=config.max_queue_spans,
            interval_s=config.export_interval_s,
        )
        # the SERVER span's resource+scope head, encoded once (the JSON lines exporter)
        head = getattr(exporter, "head", None)
        self._server_head: bytes | None = (
            head(provider.resource, SCOPE) if head is not None and self.sink.encoding else None
        )
        self.processor = LedgerSpanProcessor(self)
        provider.add_span_processor(self.processor)
        # what SDK spans of this provider call on_start/on_end through (private, read only
        # to recognize a SERVER span we can join; None just means we never join)
        self._pipeline = getattr(provider, "_active_span_processor", None)
        self.tracer = provider.get_tracer("latency_ledger.collect")
        self.profiler = ProfileSampler(
            rate=config.profile_rate,
            first_per_interval=config.profile_slowest,
            interval_s=config.profile_interval_s,
        )
        self.hooks.install()
        if STEPS.samples == 0:  # until the server's own steps are measured (STEPS): a
            # step that also reads the CPU clock at its start (a burst's steps do not)
            STEPS.mean_ns = calibrate_step_cost() + calibrate_clock_read()
        # one request's bookkeeping around the app (middleware, begin, finish)
        self.request_meter = Meter(stretches=2)
        _LIVE.add(self)
        self.plugins: list[Any] = []
        self.rules: tuple[Any, ...] = ()
        self._classify: Any = None
        load_rules_and_plugins(self, load_plugins)

    def provider_for(self, plugin: str) -> LightTracerProvider:
        """The tracer provider a plugin instruments with: light spans, their recording
        and the plugin's own timed wrappers charged to it (``ledger.plugin.*``)."""
        return LightTracerProvider(self.provider, self, plugin)

    # -- per request -------------------------------------------------------------

    def begin(
        self,
        scope: Mapping[str, Any],
        loop_state: LoopState | None,
        start_ns: int,
        busy_start_ns: int | None = None,
    ) -> Any:
        """Open the request: its account, its SERVER span's identity in the OTel context.

        The SERVER span is not an SDK ``Span``: the SDK's span and attribute bookkeeping
        (locks, per-attribute validation) cost ~120 us per request here, several times
        everything else we do. Its ids go into the context as a ``NonRecordingSpan`` so
        children parent to it, and :meth:`finish` hands a complete ``ReadableSpan`` to
        the provider's processors, as the SDK would on ``end()``.
        """
        acct = RequestRecord(loop_state, busy_start_ns)
        # a thread-per-request server's busy counter is the process's CPU clock: just read
        # by the account, it is the flight clock's too (one system call, not two)
        busy: Any = loop_state  # any busy counter (threads.py), not only a LoopState
        acct.cpu_start = self.flight.begin(
            acct.busy_start_ns if busy_start_ns is None and type(busy) is ProcessCpu else None
        )
        current = current_context()
        outer: Any = current.get(_SPAN_KEY)  # trace.get_current_span(), read directly
        if (
            getattr(outer, "kind", None) is trace.SpanKind.SERVER
            and getattr(outer, "_span_processor", None) is self._pipeline
            and outer.is_recording()
        ):
            # a SERVER span already open for this request (FastAPI's native telemetry, or
            # opentelemetry-instrumentation-asgi outside us): book onto it, no duplicate
            acct.joined = True
            acct.server = outer
            acct.server_id = outer.get_span_context().span_id
            self.processor.owner[acct.server_id] = acct
            return acct, CURRENT.set(acct)
        parent = parent_context(scope)
        ids = self.provider.id_generator
        if type(ids) is RandomIdGenerator:  # its draw, without two calls (0 is invalid)
            trace_id = parent.trace_id if parent is not None else getrandbits(128)
            span_id = getrandbits(64)
            if not trace_id or not span_id:
                trace_id = trace_id or ids.generate_trace_id()
                span_id = span_id or ids.generate_span_id()
        else:
            trace_id = parent.trace_id if parent is not None else ids.generate_trace_id()
            span_id = ids.generate_span_id()
        context = trace.SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=False,
            trace_flags=SAMPLED,
            trace_state=parent.trace_state if parent is not None else None,
        )
        acct.server = ServerSpan(context, parent, start_ns, trace_id)
        acct.server_id = span_id
        # Light child spans skip every processor: only when ours is the only one (an app's
        # own processor on a joined provider asked for every span and gets SDK spans).
        processors = getattr(self._pipeline, "_span_processors", None)
        acct.light = (
            processors is not None and len(processors) == 1 and processors[0] is self.processor
        )
        self.processor.owner[span_id] = acct
        token = CURRENT.set(acct)
        # children (DB, HTTP client spans) find their parent in the OpenTelemetry context:
        # otel_context.attach(trace.set_span_in_context(span)), with the ContextVar itself
        span = acct.context_span = trace.NonRecordingSpan(context)
        var = CONTEXT_VAR
        if var is not None:
            values = dict(current)
            values[_SPAN_KEY] = span
            acct.otel_token = var.set(Context(values))
        else:
            acct.otel_token = otel_context.attach(trace.set_span_in_context(span, current))
        return acct, token

    def finish(
        self,
        acct: RequestRecord,
        scope: Mapping[str, Any],
        status: int | None,
        error: BaseException | None,
        profile: str | None,
        route: str | None = None,
    ) -> None:
        """Book and write the request. ``route``: its template when the caller resolved it
        (Django); else read from the ASGI scope (Starlette's ``scope["route"]``)."""
        end_ns = time_ns()
        server = acct.server
        if route is None:
            route = route_template(scope)
        method = str(scope.get("method", ""))
        if error is not None and status is None:
            status = 500  # what the server (or ServerErrorMiddleware outside us) answers
        failed = error is not None or (status is not None and status >= 500)
        start_ns = server.start_time or end_ns
        # conditional expressions, not min()/max(): each of those parses its keywords
        # (~400 instructions a call), and these run for every request
        wall = end_ns - start_ns if end_ns > start_ns else 0
        cpu = acct.cpu_ns if acct.cpu_ns < wall else wall
        loop_state = acct.loop_state  # Account.queueing_candidate_ns, inline
        candidate = (
            loop_state.busy_ns - acct.busy_start_ns - acct.loop_ns if loop_state is not None else 0
        )
        queueing = candidate if candidate < wall - cpu else wall - cpu
        if queueing < 0:
            queueing = 0
        acct.finished = True
        name = f"{method} {route}" if route else (method or "HTTP")
        children = acct.children
        lights = acct.lights
        # The ledger: straight from the numbers when there is no child span or only
        # direct, sequential light ones (the common case, see light_waits); through the
        # offline ledger's book_trace otherwise.
        parts: tuple[int, ...] | None = None
        tallies: dict[str, list[int]] = {}  # its statements as booked (statements.py)
        if not children:
            parts = (
                book_light(
                    start_ns,
                    end_ns,
                    cpu,
                    queueing,
                    lights,
                    self._classify,
                    self._classified,
                    self.service,
                    tallies,
                )
                if lights
                else (0, 0, *split_measured(wall, cpu, queueing), 0, 0, 0)
            )
        if parts is None:
            ledger, calls = book_through_the_ledger(
                acct, name, start_ns, end_ns, failed, cpu, queueing, self.service, self.rules
            )
            tallies.clear()  # what light_waits counted before it gave up
            tally_calls(calls, tallies)
            parts = (
                ledger.database_ns,
                ledger.network_ns,
                ledger.interpreter_ns,
                ledger.waiting_ns,
                ledger.queueing_ns,
                ledger.database_wait_max_ns,
                ledger.network_wait_max_ns,
                ledger.unbounded_io_ns,
            )
        parts, more = whole_cpu(self.flight, self.cpu_window, acct, parts, cpu)
        # unmatched paths share one key: raw paths are attacker-chosen and unbounded; the
        # key is only read by the slow rule
        endpoint = f"{method} {route or '(unmatched)'}" if self.config.slow_per_endpoint else ""
        keep = self.keeper.keep(endpoint, wall, failed)
        acct.kept = kept = keep is not None
        stats = self.stats
        if kept and acct.sdk_tails:  # measured SDK wait spans carry their tails too
            acct.children = [with_tail(acct, child) for child in acct.children]
            children = acct.children
        if lights:
            if kept:  # written with the SERVER span by the processor's on_end
                acct.children = [*materialize(lights, acct, self), *children]
            acct.lights = []
        if profile is not None:
            stats.profiles += 1
        health = (
            (
                stats.dropped_spans,
                stats.errors + stats.plugin_errors,
                stats.export_errors,
                os.getpid(),  # the counters are this process's: several workers add up
            )
            if stats.dropped_spans or stats.errors or stats.export_errors or stats.plugin_errors
            else None
        )
        # ours around the app (this method included: the middleware measures 1 in N
        # requests, selfcost.py), each task step, plugins' wrappers and spans and worker
        # thread calls (in overhead_ns), and the export thread's share
        requests = stats.requests
        overhead = (
            acct.overhead_ns
            + self.request_meter.mean_ns
            + steps_cost_ns(acct)
            + (
                export_share_ns(self, requests)
                if requests % EXPORT_EVERY == 0
                else self._export_per_request
            )
        )
        stats.requests = requests + 1
        stats.overhead_ns += overhead
        if acct.otel_token is not None:
            self.detach(acct)
        # positional, in ServerFields' order: made for every request
        fields = ServerFields(
            method,
            route
            if route and not self.config.record_raw_path
            else recorded_path(route, scope, self.config.record_raw_path, self._paths),
            str(scope.get("scheme", "http")),
            address(scope),
            route,
            status,
            cpu,
            parts[:5],  # type: ignore[arg-type]
            kept,
            profile,
            health,
            overhead,
            keep,
            more,
            acct.plugin_ns,
            self.statements.record(tallies),
        )
        if acct.light and not kept and error is None and self._server_head is not None:
            # ours is the only processor (acct.light) and nothing else is written with
            # this span: encode it straight into the sink, no ReadableSpan, no processor
            self.processor.owner.pop(acct.server_id, None)
            self.sink.put_encoded(
                self._server_head,
                encode_server_json(
                    server.trace_id,
                    acct.server_id,
                    server.parent_id,
                    name,
                    start_ns,
                    end_ns,
                    fields,
                    failed,
                ),
            )
            return
        attrs = fields.attributes()
        if acct.joined:  # a joined span is ended by whoever opened it
            if error is not None:  # as record_exception would, but scrubbed
                event = exception_event(error, end_ns)
                server.add_event(event.name, event.attributes, event.timestamp)
            if failed and server.status.status_code is _STATUS_UNSET:
                server.set_status(trace.StatusCode.ERROR)
            server.set_attributes(attrs)
            return
        events: tuple[Any, ...] = ()
        if error is not None:
            events = (exception_event(error, end_ns),)
        readable = ReadableSpan(
            name=name,
            context=server.context,
            parent=server.parent,
            resource=self.provider.resource,
            attributes=attrs,
            events=events,
            kind=trace.SpanKind.SERVER,
            status=ERROR_STATUS if failed else UNSET_STATUS,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=SCOPE,
        )
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.on_end(readable)  # every processor, as the SDK does on end()
        else:
            self.processor.on_end(readable)

    def stop_profile(self, acct: RequestRecord, profiler: Any) -> str | None:
        """Stop a request's profile: its summary, or None if that failed (counted). A
        profiled request (rare) is charged the stop's CPU exactly, as it was the start."""
        try:
            c0 = thread_time_ns()
            summary: str | None = self.profiler.stop(profiler)
            acct.overhead_ns += thread_time_ns() - c0
        except Exception:
            self.stats.errors += 1
            return None
        return summary

    def detach(self, acct: RequestRecord) -> None:
        token, acct.otel_token = acct.otel_token, None
        if token is None:
            return
        var = CONTEXT_VAR
        if var is not None and token.var is var:
            try:
                var.reset(token)
                return
            except ValueError:  # made in another context: the API's detach logs it
                pass
        otel_context.detach(token)

    def abandon(self, acct: RequestRecord, scope: Mapping[str, Any]) -> None:
        """After :meth:`finish` failed: still write the SERVER span (no ledger) and children."""
        acct.finished = True
        acct.kept = True
        self.processor.owner.pop(acct.server_id, None)
        server = acct.server
        lights, acct.lights = acct.lights, []
        if lights and server is not None:
            acct.children = [*materialize(lights, acct, self), *acct.children]
        if acct.joined or server is None:
            self.sink.put(tuple(acct.children))
            return
        readable = ReadableSpan(
            name=str(scope.get("method", "")) or "HTTP",
            context=server.context,
            parent=server.parent,
            resource=self.provider.resource,
            attributes={
                "http.request.method": str(scope.get("method", "")),
                "url.path": recorded_path(
                    route_template(scope), scope, self.config.record_raw_path, self._paths
                ),
            },
            kind=trace.SpanKind.SERVER,
            start_time=server.start_time,
            end_time=time_ns(),
            instrumentation_scope=SCOPE,
        )
        self.sink.put((readable, *acct.children))
        acct.children = []

    # -- lifecycle ---------------------------------------------------------------

    def after_fork(self) -> None:
        """In a child made by ``os.fork()`` (gunicorn workers, ``--preload``, uWSGI): a new
        sink, and a new exporter if we made it (the JSON lines file is named by process id
        and must not be shared; an OTLP/HTTP exporter must not share pooled connections;
        an exporter the app gave us is kept). Counters restart: they are per process.
        Everything else (provider, plugins' patches, hooks) is plain memory and stays."""
        if self.closed:
            return
        for field in CollectorStats.FIELDS:
            setattr(self.stats, field, 0)
        self.flight = FlightClock()
        self.cpu_window = ProcessWindow()  # the child's CPU clock starts afresh
        make = self._make_exporter
        self.sink = self.sink.forked(make() if make is not None else self.sink.exporter)

    def flush(self) -> None:
        self.sink.drain()

    def shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.processor.active = False
        for plugin in self.plugins:
            try:
                plugin.uninstrument()
            except Exception:
                self.stats.plugin_errors += 1
        self.plugins.clear()
        self.hooks.uninstall()
        self.sink.close()
        if self.own_provider and not self.config.set_global_provider:
            with contextlib.suppress(Exception):
                self.provider.shutdown()
