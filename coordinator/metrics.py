"""Prometheus metrics for one coordinator (served at `/metrics` on the HTTP port).

Most figures are read when Prometheus scrapes, not counted as things happen: connected agents
from the hub, the report queue from `engine.stats()`, deployments, records, jobs and enrollments
from a few GROUP BY queries on the store. The code that moves those numbers is rewritten often;
a reading of its state cannot drift from it. What cannot be read afterwards is counted at the
doors: REST requests (an ASGI middleware), gRPC requests (a grpc.aio server interceptor), and
agent reports received and flushed (wrappers around the engine's `submit` and report writer).

Each coordinator has its own `CollectorRegistry` (tests run several in one process); the metric
names are listed in docs/observability.md.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select

from coordinator.app import App
from coordinator.store import models as m

log = logging.getLogger("convoy.metrics")

# REST and gRPC calls are mostly milliseconds; a slow store or a large list takes seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_READ_TTL_S = 2.0
"""Store-derived figures are cached this long, so several scrapers cost one set of queries."""


class Metrics:
    """The registry and the instruments counted as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.http_requests = Counter("convoy_http_requests", "REST and dashboard requests answered",
                                     ["route", "method", "code"], registry=r)
        self.http_latency = Histogram("convoy_http_request_duration_seconds", "Time to answer an HTTP request",
                                      ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.grpc_requests = Counter("convoy_grpc_requests", "gRPC calls finished", ["method", "code"], registry=r)
        self.grpc_latency = Histogram("convoy_grpc_request_duration_seconds",
                                      "Duration of unary gRPC calls (streams are counted, not timed)",
                                      ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.reports_received = Counter("convoy_reports_received", "Agent job status reports queued for writing",
                                        registry=r)
        self.reports_flushed = Counter("convoy_reports_flushed", "Agent job status reports written to the store",
                                       registry=r)
        self.flush_latency = Histogram("convoy_report_flush_duration_seconds",
                                       "Time to write one tick's queued agent reports (one transaction)",
                                       buckets=LATENCY_BUCKETS, registry=r)

    def attach(self, app: App) -> None:
        """Read the app's state at scrape time and count the engine's reports."""
        self.registry.register(StateCollector(app))
        instrument_engine(app.engine, self)

    def exposition(self) -> bytes:
        """The Prometheus text format (blocking: store reads; call it off the event loop)."""
        return generate_latest(self.registry)


# --- state read at scrape time ------------------------------------------------------------

def _store_counts(app: App) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    """One short read transaction: every store figure the collector exposes."""
    with app.store.read() as s:
        def grouped(*cols: Any) -> list[tuple[tuple[str, ...], float]]:
            rows = s.execute(select(*cols, func.count()).group_by(*cols)).all()
            return [(tuple(str(v) for v in row[:-1]), float(row[-1])) for row in rows]

        # A timed-out attempt's job is withdrawn with the reason (older rows: failed with it).
        timed_out = or_(m.Job.withdraw_reason.like("install timeout%"), m.Job.reason.like("install timeout%"))
        timeouts = s.scalar(select(func.count()).select_from(m.Job).where(timed_out))
        return {
            "deployments": grouped(m.Deployment.status),
            "records": grouped(m.DeploymentDevice.status),
            "jobs": grouped(m.Job.state),
            "timeouts": [((), float(timeouts or 0))],
            "enrollments": grouped(m.DeviceEnrollment.status),
            "devices": grouped(m.Device.online),
        }


class StateCollector(Collector):
    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, list[tuple[tuple[str, ...], float]]] | None] = (0.0, None)

    def _counts(self) -> dict[str, list[tuple[tuple[str, ...], float]]] | None:
        with self._lock:
            at, counts = self._cached
            if counts is not None and time.monotonic() - at < STORE_READ_TTL_S:
                return counts
            try:
                counts = _store_counts(self.app)
            except Exception as exc:  # noqa: BLE001 - a scrape must answer even when the store is away
                log.warning("metrics: store unavailable: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0])
                counts = None
            self._cached = (time.monotonic(), counts)
            return counts

    def collect(self) -> Iterable[Metric]:
        hub, engine = self.app.hub, self.app.engine
        yield GaugeMetricFamily("convoy_agents_connected", "Agents with an open Connect stream to this coordinator",
                                value=len(hub.connections) if hub is not None else 0)
        if engine is not None:
            stats = engine.stats()
            yield GaugeMetricFamily("convoy_reports_queued", "Agent reports waiting for the next flush",
                                    value=stats.get("queued_reports", 0))
            yield GaugeMetricFamily("convoy_engine_scheduled", "Deployments with a stored due time the engine waits for",
                                    value=stats.get("scheduled", 0))
            yield CounterMetricFamily("convoy_engine_ticks", "Reconcile passes of the rollout engine",
                                      value=stats.get("ticks", 0))
            yield CounterMetricFamily("convoy_engine_skipped", "Reconciles skipped: another engine held the deployment",
                                      value=stats.get("skipped", 0))
        signals = self.app.signals
        if signals is not None:
            sig = signals.stats()
            yield CounterMetricFamily("convoy_signals_published", "Cross-replica signals sent (one per payload)",
                                      value=sig.get("published", 0))
            yield CounterMetricFamily("convoy_signals_received", "Other replicas' signals received",
                                      value=sig.get("received", 0))
            yield GaugeMetricFamily("convoy_signals_listening",
                                    "1 while this replica listens for the others' signals (PostgreSQL)",
                                    value=1 if sig.get("listening", True) else 0)
        webhooks = self.app.webhooks
        if webhooks is not None:
            hooks = webhooks.stats()
            attempts = CounterMetricFamily("convoy_webhook_attempts",
                                           "Webhook delivery attempts made by this coordinator, by outcome",
                                           labels=["outcome"])
            for outcome in ("delivered", "retry", "dead"):
                attempts.add_metric([outcome], hooks.get(outcome, 0))
            yield attempts
        counts = self._counts()
        yield GaugeMetricFamily("convoy_store_up", "1 when the store answered the last metrics read",
                                value=1 if counts is not None else 0)
        if counts is None:
            return
        yield from _labelled(GaugeMetricFamily("convoy_deployments", "Deployments by status", labels=["status"]),
                             counts["deployments"])
        yield from _labelled(GaugeMetricFamily("convoy_deployment_records",
                                               "Per-device deployment records by status", labels=["status"]),
                             counts["records"])
        # Every attempt on a device is one job, created when it is dispatched.
        yield CounterMetricFamily("convoy_dispatches", "Jobs dispatched to devices (one per attempt)",
                                  value=sum(n for _, n in counts["jobs"]))
        yield from _labelled(GaugeMetricFamily("convoy_jobs", "Jobs by state", labels=["state"]), counts["jobs"])
        yield CounterMetricFamily("convoy_install_timeouts",
                                  "Attempts failed because the device stayed silent for the install timeout",
                                  value=counts["timeouts"][0][1])
        outcomes = dict((k[0], n) for k, n in counts["enrollments"])
        enrolled = CounterMetricFamily("convoy_enrollments", "Finished enrollments by outcome", labels=["outcome"])
        for outcome in ("success", "error"):
            enrolled.add_metric([outcome], outcomes.get(outcome, 0.0))
        yield enrolled
        yield GaugeMetricFamily("convoy_enrollments_pending", "Enrollments that have not reported yet",
                                value=outcomes.get("pending", 0.0))
        online = {k[0].lower(): n for k, n in counts["devices"]}
        devices = GaugeMetricFamily("convoy_devices", "Enrolled devices by online state", labels=["online"])
        devices.add_metric(["true"], online.get("true", 0.0) + online.get("1", 0.0))
        devices.add_metric(["false"], online.get("false", 0.0) + online.get("0", 0.0))
        yield devices


def _labelled(family: GaugeMetricFamily, rows: list[tuple[tuple[str, ...], float]]) -> Iterator[Metric]:
    for labels, n in rows:
        family.add_metric(list(labels), n)
    yield family


# --- agent reports ----------------------------------------------------------------------------

def instrument_engine(engine: Any, metrics: Metrics) -> None:
    """Count reports as the engine queues them, and time each flush, without editing the engine:
    the two seams are `submit(report)` and the blocking writer `_apply_reports(batch, now)`."""
    if engine is None:
        return
    submit, apply_reports = getattr(engine, "submit", None), getattr(engine, "_apply_reports", None)
    if submit is None or apply_reports is None:  # metrics must never keep a coordinator from starting
        log.warning("metrics: the engine has no submit/_apply_reports seam; report metrics stay at 0")
        return

    def counted_submit(report: Any) -> None:
        metrics.reports_received.inc()
        submit(report)

    def timed_apply(batch: list[Any], now: Any) -> Any:
        start = time.perf_counter()
        result = apply_reports(batch, now)
        metrics.flush_latency.observe(time.perf_counter() - start)
        metrics.reports_flushed.inc(len(batch))
        return result

    engine.submit = counted_submit
    engine._apply_reports = timed_apply


# --- gRPC -------------------------------------------------------------------------------------

def _code_name(context: grpc.aio.ServicerContext, default: str) -> str:
    code = context.code()
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return str(status.name)
    return default


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call by method and final status code; times unary calls."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        """Per method: the servicer's handler and its counting wrapper, made on the first call
        (the servicers' handlers are fixed once registered): a wrapper per call was measurable
        CPU on the enrollment path (docs/BENCHMARKS.md, profile note 2026-12-03)."""

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = str(handler_call_details.method)
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap_handler(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap_handler(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        for kind, factory in (("unary_unary", grpc.unary_unary_rpc_method_handler),
                              ("unary_stream", grpc.unary_stream_rpc_method_handler),
                              ("stream_unary", grpc.stream_unary_rpc_method_handler),
                              ("stream_stream", grpc.stream_stream_rpc_method_handler)):
            behavior = getattr(handler, kind)
            if behavior is not None:
                wrapped = self._wrap(behavior, method, timed=kind == "unary_unary")
                return factory(wrapped, request_deserializer=handler.request_deserializer,
                               response_serializer=handler.response_serializer)
        return handler

    def _record(self, method: str, code: str, started: float, timed: bool) -> None:
        self.metrics.grpc_requests.labels(method, code).inc()
        if timed:
            self.metrics.grpc_latency.labels(method).observe(time.perf_counter() - started)

    def _wrap(self, behavior: Any, method: str, timed: bool) -> Any:
        # grpc.aio tells coroutine handlers from async-generator handlers by their function
        # type, so the wrapper must be of the same kind as what it wraps.
        if inspect.isasyncgenfunction(behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started, code = time.perf_counter(), "OK"
                try:
                    async for item in behavior(request, context):
                        yield item
                    code = _code_name(context, "OK")
                except BaseException:
                    code = _code_name(context, "CANCELLED" if context.cancelled() else "UNKNOWN")
                    raise
                finally:
                    self._record(method, code, started, timed)
            return stream
        if inspect.iscoroutinefunction(behavior):
            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started, code = time.perf_counter(), "OK"
                try:
                    out = await behavior(request, context)
                    code = _code_name(context, "OK")
                    return out
                except BaseException:
                    code = _code_name(context, "CANCELLED" if context.cancelled() else "UNKNOWN")
                    raise
                finally:
                    self._record(method, code, started, timed)
            return unary
        return behavior  # a sync handler: none are registered on the aio server


# --- HTTP -------------------------------------------------------------------------------------

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def route_label(scope: dict[str, Any], status: int) -> str:
    """The matched route's template with its router prefix: FastAPI puts the route as declared
    (`/deployments/{dep_id}`) in the scope, without the `/v2` it was included under, so the
    prefix is the leading segments of the raw path the template does not account for."""
    route = scope.get("route")
    template = str(getattr(route, "path", "") or "") if route is not None else ""
    if not template:
        return "static" if status < 400 else "unmatched"
    raw = scope.get("raw_path")  # the router may rewrite "path" on the way in; raw_path stays
    path = raw.decode("latin-1").split("?", 1)[0] if isinstance(raw, bytes) else str(scope.get("path", ""))
    segments = path.rstrip("/").split("/")
    extra = len(segments) - len(template.rstrip("/").split("/"))
    return "/".join(segments[: extra + 1]) + template if extra > 0 else template


class HttpMetricsMiddleware:
    """Pure ASGI middleware (streams such as SSE pass through untouched): counts each request by
    its route template (`/v2/deployments/{dep_id}`, never the raw path) and status code."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            label = route_label(scope, status)
            method = str(scope.get("method", ""))
            self.metrics.http_requests.labels(label, method, str(status)).inc()
            self.metrics.http_latency.labels(label, method).observe(time.perf_counter() - started)
