"""Prometheus metrics plumbing: the ``/metrics`` view, the worker's endpoint, task metrics.

Counters and histograms are module-level ``prometheus_client`` objects, each app defining its
own in ``<app>/metrics.py``; under gunicorn and Celery's prefork pool they are kept in
multiprocess mode (config/metrics_dirs.py), and the endpoints read the files of every process.
Gauges of the system's state (queue depths, outbox backlog, orders per status) are not kept by
any process: they are read when Prometheus scrapes, from cached readings, by the collectors
listed in the ``METRICS_COLLECTORS`` setting (core/gauges.py, orders/metrics.py). Only the web
endpoint serves them, so a worker scrape never touches the database or the broker.

Every name starts with ``orderservice_``. Labels take a small, fixed set of values (a status,
an outcome, a queue or task name), never an order, user, product or endpoint id.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import signals
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django_prometheus.middleware import Metrics, PrometheusAfterMiddleware, PrometheusBeforeMiddleware
from django_prometheus.utils import Time, TimeSince
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from config.metrics_dirs import MULTIPROC_ENV, metrics_process_dead
from core.tracing import untraced

logger = logging.getLogger(__name__)

NAMESPACE = "orderservice"

# Task run times: from a few milliseconds (a reservation) to the expiry sweep's 20 s budget and
# a webhook's 15 s of timeouts.
TASK_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))

TASK_RUNS = Counter(
    "task_runs",
    "Task runs, by task and how the run ended: succeeded, failed (for good), retried.",
    ["task", "outcome"],
    namespace=NAMESPACE,
)
TASK_DURATION = Histogram(
    "task_run_duration_seconds",
    "Time a task run took, by task.",
    ["task"],
    namespace=NAMESPACE,
    buckets=TASK_DURATION_BUCKETS,
)
DEAD_LETTERED = Counter(
    "messages_dead_lettered",
    "Messages the worker sent to a dead-letter queue, by work queue and reason: failed (the task "
    "failed for good) or undecodable. Messages the broker dead-letters itself (delivery limit) "
    "show in orderservice_dead_letter_queue_messages only.",
    ["queue", "reason"],
    namespace=NAMESPACE,
)

# Celery task states as the outcome label of TASK_RUNS.
_TASK_OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}


def count_after_commit(counter: Any, amount: float = 1) -> None:
    """Add ``amount`` to ``counter`` (a metric or a labelled child) once the current transaction
    commits, so a rolled-back change is never counted. Outside a transaction: at once."""
    transaction.on_commit(functools.partial(counter.inc, amount))


# The request metrics recorded, of those django-prometheus's middleware defines: what the alerts,
# the dashboard and an operator read (requests by method; responses by status, and by status,
# view and method; latency by view and of the whole stack; exceptions; streaming and template
# responses, which the admin makes). Left out: the ``before_middlewares`` request and response
# counts (the same totals as by method and by status), requests by transport (TLS ends at the
# load balancer), by view, transport and method (the same as responses by view), AJAX requests,
# and the request and response body sizes. Each request writes 7 values where it wrote 16.
RECORDED_REQUEST_METRICS = frozenset(
    {
        "django_http_requests_total_by_method",
        "django_http_responses_total_by_status",
        "django_http_responses_total_by_status_view_method",
        "django_http_responses_streaming_total",
        "django_http_responses_total_by_templatename",
        "django_http_requests_latency_seconds_by_view_method",
        "django_http_requests_unknown_latency_total",
        "django_http_requests_latency_including_middlewares_seconds",
        "django_http_requests_unknown_latency_including_middlewares_total",
        "django_http_exceptions_total_by_type",
        "django_http_exceptions_total_by_view",
    }
)


class RequestMetrics(Metrics):
    """django-prometheus's request metrics, only those in ``RECORDED_REQUEST_METRICS`` registered
    (the others are None, and nothing records them)."""

    def register_metric(self, metric_cls: Any, name: str, documentation: str, *args: Any, **kwargs: Any) -> Any:
        if name not in RECORDED_REQUEST_METRICS:
            return None
        return super().register_metric(metric_cls, name, documentation, *args, **kwargs)


class RequestLatencyMiddleware(PrometheusBeforeMiddleware):
    """First in the stack: the latency of the whole stack (django-prometheus's
    ``PrometheusBeforeMiddleware`` without its two counts, which the metrics below give)."""

    metrics_cls = RequestMetrics

    def process_request(self, request: HttpRequest) -> None:
        request.prometheus_before_middleware_event = Time()  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        started = getattr(request, "prometheus_before_middleware_event", None)
        if started is None:
            self.metrics.requests_unknown_latency_before.inc()
        else:
            self.metrics.requests_latency_before.observe(TimeSince(started))
        return response


class RequestMetricsMiddleware(PrometheusAfterMiddleware):
    """Last in the stack: django-prometheus's ``PrometheusAfterMiddleware`` recording only
    ``RECORDED_REQUEST_METRICS``, each labelled series looked up once.

    prometheus_client's ``labels()`` checks the label names and takes a lock each time; the series
    are kept here by metric and label values, which take the same bounded values as the series
    prometheus_client keeps itself (a view, a method, a status).
    """

    metrics_cls = RequestMetrics

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.series: dict[tuple[Any, ...], Any] = {}

    def label_metric(self, metric: Any, request: HttpRequest, response: Any = None, **labels: Any) -> Any:
        if not labels:
            return metric
        key = (metric, *labels.items())
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = metric.labels(**labels)
        return series

    def process_request(self, request: HttpRequest) -> None:
        self.label_metric(self.metrics.requests_by_method, request, method=self._method(request)).inc()
        request.prometheus_after_middleware_event = Time()  # type: ignore[attr-defined]

    def process_view(self, request: HttpRequest, view_func: Any, *view_args: Any, **view_kwargs: Any) -> None:
        """Nothing: the library's count by view, transport and method is not recorded."""

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        method, view, status = self._method(request), self._get_view_name(request), str(response.status_code)
        metrics = self.metrics
        self.label_metric(metrics.responses_by_status, request, response, status=status).inc()
        self.label_metric(
            metrics.responses_by_status_view_method, request, response, status=status, view=view, method=method
        ).inc()
        if getattr(response, "streaming", False):
            metrics.responses_streaming.inc()
        started = getattr(request, "prometheus_after_middleware_event", None)
        if started is None:
            metrics.requests_unknown_latency.inc()
        else:
            self.label_metric(
                metrics.requests_latency_by_view_method, request, response, view=view, method=request.method
            ).observe(TimeSince(started))
        return response


# --- /metrics ------------------------------------------------------------------------------


@functools.cache
def scrape_collectors() -> list[Collector]:
    return [import_string(path)() for path in settings.METRICS_COLLECTORS]


class _Exposition(Collector):
    """What one scrape of ``/metrics`` shows: the counters of every process, and the gauges.

    A gauge collector whose reading fails (PostgreSQL down) is left out of the scrape, and
    ``orderservice_scrape_collector_success`` says so: the endpoint must keep answering during
    the outages it is there to show.
    """

    def __init__(self, process_metrics: Collector, gauges: Iterable[Collector]) -> None:
        self.process_metrics = process_metrics
        self.gauges = list(gauges)

    def collect(self) -> Iterator[Metric]:
        yield from self.process_metrics.collect()
        success = GaugeMetricFamily(
            f"{NAMESPACE}_scrape_collector_success",
            "1 if the gauges of a collector could be read for this scrape, else 0.",
            labels=["collector"],
        )
        for collector in self.gauges:
            name = type(collector).__name__
            try:
                metrics = list(collector.collect())
            except Exception:
                logger.warning("Metrics collector %s failed", name, exc_info=True)
                success.add_metric([name], 0)
                continue
            success.add_metric([name], 1)
            yield from metrics
        yield success


class ProcessFilesCollector(multiprocess.MultiProcessCollector):
    """prometheus_client's multiprocess collector, leaving out a file still being created.

    A new process (a recycled pool process, a new gunicorn worker) creates its file empty and
    sizes it just after; read in between, it would fail the whole scrape with ``struct.error``
    (prometheus/client_python#1199). A file is never empty once sized, so an empty one is only
    skipped until the next scrape; it holds no counts yet.
    """

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            with contextlib.suppress(FileNotFoundError):  # a dead process's live gauge, just removed
                if os.path.getsize(path) > 0:
                    files.append(path)
        return self.merge(files, accumulate=True)


def _process_metrics() -> Collector:
    """Counters and histograms: every process's files in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        ProcessFilesCollector(registry)
        return registry
    return REGISTRY


def metrics_token_accepted(authorization: str) -> bool:
    """Whether an ``Authorization`` header value carries ``METRICS_TOKEN`` (any, when it is unset).

    Compared in constant time: the answer's timing tells nothing about the token.
    """
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


UNAUTHORIZED_BODY = b"Unauthorized: send METRICS_TOKEN as Authorization: Bearer <token>\n"


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text format (version 0.0.4), or what the scraper's ``Accept``
    asks for (OpenMetrics), negotiated as prometheus_client's own endpoint does. Wants
    ``METRICS_TOKEN`` as a bearer token where it is set (401 otherwise)."""
    if not metrics_token_accepted(request.headers.get("Authorization", "")):
        response = HttpResponse(UNAUTHORIZED_BODY, status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    with untraced():  # scraped every few seconds: no trace of each reading
        body = encoder(_Exposition(_process_metrics(), scrape_collectors()))
    return HttpResponse(body, content_type=content_type)


# --- The worker's endpoint ------------------------------------------------------------------


def _ports(spec: str) -> list[int]:
    """``9808`` or a range ``9808-9815``; ``0`` is any free port."""
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds: no line each."""


class _MetricsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _bearer_protected(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The worker's endpoint wants METRICS_TOKEN as the web's does."""

    def protected(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if metrics_token_accepted(environ.get("HTTP_AUTHORIZATION", "")):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
        )
        return [UNAUTHORIZED_BODY]

    return protected


def _metrics_server(*, port: int, address: str, registry: CollectorRegistry) -> WSGIServer:
    """prometheus_client's endpoint (its WSGI app) behind the bearer token, in a daemon thread."""

    class Server(_MetricsServer):
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    server = make_server(address, port, _bearer_protected(make_wsgi_app(registry)), Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="worker-metrics").start()
    return server


def worker_metrics_serve() -> int | None:
    """Serve the worker's counters (every pool process's) over HTTP; returns the port, or None.

    Runs in the worker's main process. ``WORKER_METRICS_PORT`` is one port or a range, of which
    the first free one is taken (several workers on one host); empty turns the endpoint off. A
    worker whose ports are all taken still works, without the endpoint, and says so in its log.
    """
    spec = settings.WORKER_METRICS_PORT.strip()
    if not spec:
        return None
    registry = CollectorRegistry()
    ProcessFilesCollector(registry)
    for port in _ports(spec):
        try:
            server = _metrics_server(port=port, address=settings.WORKER_METRICS_ADDRESS, registry=registry)
        except OSError:
            continue
        bound = int(server.server_port)
        logger.info("Worker metrics at http://%s:%d/metrics", settings.WORKER_METRICS_ADDRESS, bound)
        return bound
    logger.error("Worker metrics not served: no free port in WORKER_METRICS_PORT=%s", spec)
    return None


# --- Task signals (connected in CoreConfig.ready) -------------------------------------------

_started: dict[str, float] = {}


def on_task_prerun(task_id: str, task: Any, **kwargs: Any) -> None:
    _started[task_id] = time.monotonic()


def on_task_postrun(task_id: str, task: Any, state: str | None = None, **kwargs: Any) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_DURATION.labels(task.name).observe(time.monotonic() - started)
    outcome = _TASK_OUTCOMES.get(state or "", (state or "unknown").lower())
    TASK_RUNS.labels(task.name, outcome).inc()


def on_worker_ready(**kwargs: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        worker_metrics_serve()
    else:
        logger.warning("Worker metrics not served: the worker was not started as `celery ... worker`")


def on_worker_process_shutdown(pid: int | None = None, **kwargs: Any) -> None:
    metrics_process_dead(pid or os.getpid())


def connect_task_signals() -> None:
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="core.metrics.prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="core.metrics.postrun")
    signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="core.metrics.worker_ready")
    signals.worker_process_shutdown.connect(
        on_worker_process_shutdown, weak=False, dispatch_uid="core.metrics.process_shutdown"
    )
