"""What every log line says about the work it belongs to: request id, task id, order id.

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

import uuid
from contextvars import ContextVar

from django_guid import clear_guid, set_guid

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
