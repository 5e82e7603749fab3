"""``LedgerMiddleware`` for Django: one line in ``MIDDLEWARE``, sync and async capable.

Contract: put ``"latency_ledger_django.LedgerMiddleware"`` first in ``settings.MIDDLEWARE``.
Each request gets a SERVER span from the shared collector (``latency_ledger.collect``:
its exporter, CPU accounting, booking and pyinstrument sampling, not a copy of them)
named ``METHOD /route`` by the resolved route (``request.resolver_match.route`` as
``http.route``, never the raw path), with the status, and the view's exception (status
ERROR) when the response is a 5xx. Its ``ledger.*`` totals hold the request's own CPU:

- sync views under WSGI (gunicorn ``gthread``, any thread-per-request server): this
  thread's CPU clock while the request runs, paused inside database and network spans;
  ``queueing`` is the CPU other threads of the process burned meanwhile (the GIL lets
  one run at a time), clipped by the ledger to the time that is otherwise unexplained;
- sync views under ASGI (asgiref runs them in a worker thread) and async views: the
  collector's task-step and worker-thread accounting, exactly as for an ASGI app.

Time a request waits for the GIL or for a free worker is never booked as CPU: a thread
clock does not advance while its thread waits. Streaming responses end their span when
the body is exhausted or closed, with the CPU spent producing it. The response, its
headers and body are never altered (a streaming body is re-wrapped chunk for chunk, sync
stays sync and async stays async; a ``FileResponse`` is left as is), and the collector's
own failures are counted, never raised into the app.

Modules: this one drives a request through the collector; :mod:`.scope` says what the
request is (scope, route), :mod:`.streaming` books a streaming body when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from time import thread_time_ns, time_ns
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase

from latency_ledger.collect import default_collector
from latency_ledger.collect.accounting import (
    CURRENT,
    PER_THREAD,
    begin_segment,
    end_segment,
    enter_python,
    leave_python,
)
from latency_ledger.collect.light import current_context
from latency_ledger.collect.steps import TimedCoroutine, request_start
from latency_ledger.collect.threads import PROCESS_CPU, request_cpu_ns
from latency_ledger_django import forking
from latency_ledger_django.plugin import plugin
from latency_ledger_django.scope import name_outer, request_scope, route_template
from latency_ledger_django.settings import read_settings
from latency_ledger_django.streaming import AsyncStream, Finisher, SyncStream

_EXCEPTION = "_latency_ledger_exception"


class LedgerMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self._settings = read_settings()
        if not self._settings.enabled:
            raise MiddlewareNotUsed("LATENCY_LEDGER['enabled'] is False")
        self._collector: Any = None
        self._lock = threading.Lock()
        forking.register()
        forking.MIDDLEWARES.add(self)

    # The collector is made on the first request, in the process that serves it: with
    # ``gunicorn --preload`` this module loads in the master, and an export thread or an
    # open trace file must not be inherited across fork (one made earlier is re-armed in
    # the child: see forking.py).
    def _get_collector(self) -> Any:
        collector = self._collector
        if collector is not None and not collector.closed:
            return collector
        with self._lock:
            collector = self._settings.collector
            if collector is None:
                collector = default_collector(self._settings.config, self._settings.service_name)
            # the provider the collector gives plugins: light spans inside requests, their
            # cost charged to the plugin
            provider_for = getattr(collector, "provider_for", None)
            provider = provider_for(plugin.name) if provider_for else collector.provider
            disabled = plugin.name in getattr(collector, "disabled_plugins", ())
            if not disabled and not plugin.active and plugin.instrument(provider):
                collector.plugins.append(plugin)  # undone by collector.shutdown()
            self._collector = collector
        return collector

    def _count_error(self) -> None:
        with contextlib.suppress(Exception):
            self._collector.stats.errors += 1

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Keep the view's exception for the span; Django still turns it into a response."""
        request.__dict__[_EXCEPTION] = exception

    # -- sync (WSGI, or a sync-only chain) -----------------------------------------

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if CURRENT.get() is not None:  # already booked by an outer ledger middleware
            inner = self.get_response(request)
            name_outer(request)
            return inner
        try:
            collector = self._get_collector()
            # our CPU around the view is the collector's cost: 1 in N requests measured
            # (collect/selfcost.py), to begin_segment and from end_segment to the end
            meter = collector.request_meter
            sampled = meter.due()
            c0 = thread_time_ns() if sampled else 0
            scope = request_scope(request)
            start_ns = time_ns()
            # this thread's clock from when the process clock is read (in begin): CPU it
            # spends from here on, ours included, is never "other threads'" work
            own_t0 = thread_time_ns()
            acct, token = collector.begin(scope, PROCESS_CPU, start_ns)
            context = current_context()  # get_current(), its ContextVar read directly
        except Exception:
            self._count_error()
            return self.get_response(request)
        profiler = self._start_profile(collector, scope, start_ns, acct)
        charged0 = acct.cpu_ns
        begin_segment(acct)
        seg_t0 = PER_THREAD.seg.t0  # the thread clock begin_segment read: no extra system call
        in_python = PER_THREAD.seg.active  # the server's pool thread may be counted already
        enter_python()  # holds or queues for the interpreter lock (tails of I/O spans)
        response: Any = None
        error: BaseException | None = None
        try:
            response = self.get_response(request)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if not in_python:
                leave_python()
            end_segment()
            # this thread's CPU in the view, and all the CPU charged to the request meanwhile
            # (helper threads too): the request's CPU in the view is their maximum
            seg_ns = PER_THREAD.seg.t0 - seg_t0
            in_view = request_cpu_ns(seg_ns, acct.cpu_ns - charged0)
            self._end(
                collector,
                acct,
                token,
                context,
                request,
                scope,
                response,
                error,
                profiler,
                (own_t0, seg_ns, in_view),
            )
            if sampled and profiler is None:
                meter.record(seg_t0 - c0 + thread_time_ns() - seg_t0 - seg_ns)
        return response

    # -- async (ASGI) ----------------------------------------------------------------

    async def __acall__(self, request: HttpRequest) -> Any:
        if CURRENT.get() is not None:
            inner = await self.get_response(request)
            name_outer(request)
            return inner
        try:
            collector = self._get_collector()
            meter = collector.request_meter  # as in __call__
            sampled = meter.due()
            c0 = thread_time_ns() if sampled else 0
            loop_state = collector.hooks.ensure_loop(asyncio.get_running_loop())
            timed, start_ns, busy_start = request_start()
            wrapped = timed is not None
            scope = request_scope(request)
            acct, token = collector.begin(scope, loop_state, start_ns, busy_start)
            context = current_context()  # get_current(), its ContextVar read directly
        except Exception:
            self._count_error()
            return await self.get_response(request)
        profiler = self._start_profile(collector, scope, start_ns, acct)
        begin_segment(acct)
        c1 = PER_THREAD.seg.t0
        response: Any = None
        error: BaseException | None = None
        try:
            if wrapped:
                response = await self.get_response(request)
            else:  # the first request, whose task predates our task factory
                response = await TimedCoroutine(self.get_response(request), loop_state)
        except BaseException as exc:
            error = exc
            raise
        finally:
            end_segment()
            c2 = PER_THREAD.seg.t0
            if wrapped:  # the step it ends in is its task's: ending after the segment, uncounted
                acct.steps += 1
            self._end(
                collector, acct, token, context, request, scope, response, error, profiler, None
            )
            if wrapped:  # counted as a step of no request when it ends: charged above
                loop_state.free_steps -= 1
            if sampled and profiler is None:
                meter.record(c1 - c0 + thread_time_ns() - c2)
        return response

    # -- both ------------------------------------------------------------------------

    def _start_profile(
        self, collector: Any, scope: dict[str, Any], start_ns: int, acct: Any
    ) -> Any:
        """A pyinstrument profile of this request when the sampler picks it (else None),
        following it into the worker threads that run its sync code (``sync_to_async``)."""
        try:
            if collector.profiler.enabled:
                p0 = thread_time_ns()
                profiler = collector.profiler.start(scope["path"], start_ns)
                if profiler is not None:
                    acct.thread_wrapper = collector.profiler.follow(profiler, self._count_error)
                    # a profiled request (rare) is charged its profile's start and stop
                    # exactly; the request meter leaves it out (see _measured)
                    acct.overhead_ns += thread_time_ns() - p0
                return profiler
        except Exception:
            self._count_error()
        return None

    def _end(
        self,
        collector: Any,
        acct: Any,
        token: Any,
        context: Any,
        request: HttpRequest,
        scope: dict[str, Any],
        response: Any,
        error: BaseException | None,
        profiler: Any,
        threaded: tuple[int, int, int] | None,
    ) -> None:
        """Book the request (or hand it to the streaming body). ``threaded``: WSGI
        accounting's this-thread clock at begin, its CPU in the view, and the request's
        CPU in the view, all threads (None under ASGI)."""
        summary = collector.stop_profile(acct, profiler) if profiler is not None else None
        try:
            status = response.status_code if isinstance(response, HttpResponseBase) else None
            raised = request.__dict__.pop(_EXCEPTION, None)
            if error is None and raised is not None and (status is None or status >= 500):
                error = raised
            route = route_template(request)
            if threaded is not None:
                # all of the request's CPU (waits included), to leave other threads' CPU
                # as the process's CPU minus it: see latency_ledger.collect.threads. Ours
                # around the view is this thread's only; in the view, helpers' too.
                own_t0, seg_ns, in_view = threaded
                acct.loop_ns += thread_time_ns() - own_t0 - seg_ns + in_view
            if (
                error is None
                and status is not None
                and response.streaming
                and getattr(response, "file_to_stream", None) is None
            ):
                # the body is produced after we return: book the request when it ends
                collector.detach(acct)
                finisher = Finisher(
                    collector, acct, context, scope, status, route, threaded is not None
                )
                finisher.profile = summary
                if response.is_async:
                    response.streaming_content = AsyncStream(response.streaming_content, finisher)
                else:
                    response.streaming_content = SyncStream(response.streaming_content, finisher)
            else:
                collector.finish(acct, scope, status, error, summary, route=route)  # detaches
        except Exception:
            self._count_error()
            with contextlib.suppress(Exception):
                collector.abandon(acct, scope)
            with contextlib.suppress(Exception):
                collector.detach(acct)
        finally:
            CURRENT.reset(token)
