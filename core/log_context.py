"""What every log line says about the work it belongs to: request id, task id, order id, and
the trace and span ids when tracing is on (core/tracing.py).

The request id is django-guid's: set by its middleware for an HTTP request, and for a task by
``task_context_start`` from the ``request_id`` header the outbox put on the task's message (the
id of the request whose transaction wrote the outbox row). Since the outbox stamps each row with
the current id, a task that enqueues further tasks passes the id on, so one id follows an order
from the request through every task it causes. A task without one (sent by beat) gets a new id,
which the tasks it causes inherit in turn.

django-guid's own Celery integration is not used: it stamps a message with the id current in
the process that publishes it, while the outbox relay publishes, from a worker, rows written by
many other requests.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from celery import signals
from django_guid import clear_guid, get_guid, set_guid

from core.tracing import trace_ids_current

_task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
_order_id: ContextVar[int | None] = ContextVar("order_id", default=None)


def task_context_start(*, task_id: str, request_id: str | None) -> None:
    """Call when a task starts running, before it logs anything."""
    set_guid(request_id or uuid.uuid4().hex)
    _task_id.set(task_id)
    _order_id.set(None)


def task_context_end() -> None:
    clear_guid()
    _task_id.set(None)
    _order_id.set(None)


def log_context_bind_order(order_id: int | None) -> None:
    """Name the order the running task works on; its log lines carry ``order_id`` until it ends."""
    if _task_id.get() is not None:  # a web process would keep it past the request
        _order_id.set(order_id)


def current_task_id() -> str | None:
    return _task_id.get()


def current_order_id() -> int | None:
    return _order_id.get()


def request_id_filter(missing: str | None) -> Callable[[logging.LogRecord], bool]:
    """The log filter of the ``LOGGING`` setting: puts ``request_id``, ``task_id``, ``order_id``,
    ``trace_id`` and ``span_id`` on every record. Outside a request or task the request id is
    ``missing``, the task and order None; the trace ids are ``missing`` outside a span or when not
    tracing."""

    def add_context(record: logging.LogRecord) -> bool:
        record.request_id = get_guid() or missing
        record.task_id = current_task_id()
        record.order_id = current_order_id()
        record.trace_id, record.span_id = trace_ids_current() or (missing, missing)
        return True

    return add_context


# --- Task signals (connected in CoreConfig.ready) -------------------------------------------


def on_task_prerun(task_id: str, task: Any, **kwargs: Any) -> None:
    task_context_start(task_id=task_id, request_id=task.request.get("request_id"))


def on_task_postrun(**kwargs: Any) -> None:
    task_context_end()


def connect_task_signals() -> None:
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="core.log_context.prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="core.log_context.postrun")
