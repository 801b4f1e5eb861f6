"""Tracing with OpenTelemetry: one trace from ``POST /api/v1/orders/`` through the reservation
to the merchant's webhook, across web and worker processes.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and
``OTEL_SDK_DISABLED`` is not true (``TRACING_ENABLED`` in the settings); spans are exported over
OTLP/HTTP. Off, nothing of OpenTelemetry is imported or set up, and every helper below costs one
test of a module flag: the request path pays nothing for tracing it does not use.

What makes the spans, once on (``tracing_init``, from ``CoreConfig.ready``):

- each HTTP request: opentelemetry-instrumentation-django, the first middleware (probes,
  ``/metrics`` and static files are left out);
- each database statement: opentelemetry-instrumentation-psycopg (the SQL, never its parameters);
- each task run: opentelemetry-instrumentation-celery, a child of the ``traceparent`` header of
  its message;
- each publish of a task message: :func:`outbox_publish_span`. The outbox row keeps the
  ``traceparent`` of the span that wrote it (``traceparent_current``), and the publish is a child
  of that span, whoever publishes the row: the request after its commit, or the relay on beat's
  schedule minutes later, from another process. Celery's instrumentation would make the publish
  a child of the publishing code (the relay's own trace) and, for a task not registered in the
  publishing process (web processes register none), never end its span; its publish hooks are
  disconnected;
- each webhook POST and e-mail send: :func:`client_span`. Webhook requests carry no
  ``traceparent``: the merchant is a third party, and our trace ids are none of its business.

Sampling, the exporter's headers and timeouts, the batch size: OpenTelemetry's own ``OTEL_*``
variables (see docs/operations.md). A task keeps the sampling decision of the request that
caused it (the ``traceparent`` flags travel with the outbox row).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

# Paths whose requests get no span: probes and scrapes (many a minute, nothing to follow) and
# static files. Regular expressions searched in the URL; OTEL_PYTHON_DJANGO_EXCLUDED_URLS replaces them.
DEFAULT_EXCLUDED_URLS = r"/healthz$,/readyz$,/metrics$,/static/"
# How long a worker's pool process may take to export its last spans when it stops.
FLUSH_TIMEOUT_MILLIS = 5000

_enabled = False
_tracer: Tracer | None = None
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_NO_PUBLISH_SPAN = contextlib.nullcontext(_NO_HEADERS)
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext(None)


def tracing_enabled() -> bool:
    return _enabled


def process_role() -> str:
    """``web``, ``worker``, ``beat`` or ``manage``: the default service name's suffix."""
    import click  # Celery's command line; already imported in a worker or beat

    context = click.get_current_context(silent=True)
    while context is not None:  # the sub-command's context, then the ``celery`` group's
        for name in (context.info_name, context.invoked_subcommand):
            if name in ("worker", "beat"):
                return name
        context = context.parent
    if "config.wsgi" in sys.modules:  # gunicorn config.wsgi:application, being loaded
        return "web"
    return "manage"


def tracing_init() -> None:
    """Set up the tracer provider, the OTLP exporter and the instrumentations, once per process.

    Called while Django sets up (before the WSGI handler reads ``MIDDLEWARE`` and before any
    database connection); a gunicorn or Celery pool process forked later inherits it all, and
    the SDK restarts its export thread in each child.
    """
    global _enabled, _tracer
    if _enabled:
        return
    from celery import signals
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service_name = os.environ.get("OTEL_SERVICE_NAME") or f"order-service-{process_role()}"
    # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on); the
    # exporter's endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*; the batch
    # processor's queue and delays from OTEL_BSP_* (a full queue drops spans, never blocks).
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
    DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=excluded)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    celery_instrumentor = CeleryInstrumentor()
    celery_instrumentor.instrument(tracer_provider=provider)
    # Publishing is traced by outbox_publish_span (see the module's docstring).
    signals.before_task_publish.disconnect(celery_instrumentor._trace_before_publish)
    signals.after_task_publish.disconnect(celery_instrumentor._trace_after_publish)

    def flush(**kwargs: Any) -> None:
        # Pool processes end without running atexit handlers: export what they hold first.
        provider.force_flush(FLUSH_TIMEOUT_MILLIS)

    signals.worker_process_shutdown.connect(flush, weak=False)
    signals.worker_shutdown.connect(flush, weak=False)

    _tracer = trace.get_tracer("order-service")
    _enabled = True


def traceparent_current() -> str:
    """The W3C ``traceparent`` of the current span, for work that runs later elsewhere (the
    outbox row keeps it); empty when not tracing or outside any span."""
    if not _enabled:
        return ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def trace_ids_current() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, in hex, for log lines; None when there is none."""
    if not _enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def outbox_publish_span(*, task_name: str, task_id: str, traceparent: str) -> AbstractContextManager[Mapping[str, str]]:
    """Around the publish of one outbox row: a span that is a child of the row's ``traceparent``
    (the span that wrote it), not of the code publishing it. Yields the headers to add to the
    message, which carry the span on to the task's run; nothing (and no span) when not tracing
    or when the row was written outside any trace."""
    if not _enabled or not traceparent:
        return _NO_PUBLISH_SPAN
    return _publish_span(task_name=task_name, task_id=task_id, traceparent=traceparent)


@contextlib.contextmanager
def _publish_span(*, task_name: str, task_id: str, traceparent: str) -> Iterator[Mapping[str, str]]:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    assert _tracer is not None
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    # Published later by someone else (the relay's task): a link to it, for the way back.
    publisher = trace.get_current_span().get_span_context()
    origin = trace.get_current_span(parent).get_span_context()
    links = [Link(publisher)] if publisher.is_valid and publisher.trace_id != origin.trace_id else None
    attributes = {"messaging.system": "rabbitmq", "messaging.message.id": task_id, "celery.task_name": task_name}
    with _tracer.start_as_current_span(
        f"publish {task_name}", context=parent, kind=SpanKind.PRODUCER, links=links, attributes=attributes
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield headers


def client_span(name: str, attributes: Mapping[str, str | int]) -> AbstractContextManager[Span | None]:
    """A span around one outgoing call (a webhook POST, an e-mail send); None when not tracing."""
    if not _enabled:
        return _NO_SPAN
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    return _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=dict(attributes))


def span_outcome(span: Span | None, *, attributes: Mapping[str, str | int] | None = None, error: str = "") -> None:
    """Record what a :func:`client_span`'s call came to: its attributes, and an error if it failed."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    if attributes:
        span.set_attributes(dict(attributes))
    if error:
        span.set_status(Status(StatusCode.ERROR, error))


def untraced() -> AbstractContextManager[None]:
    """No spans for what runs inside: readiness checks and scrapes, which come every few seconds,
    outside any request span, and would each start a trace of their own."""
    if not _enabled:
        return _NO_SPAN
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()
