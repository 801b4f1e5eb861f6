"""The app's base task: a task that fails for good leaves a ``TaskFailure`` row behind.

Celery calls ``on_failure`` in the pool process when a task raises anything but ``Retry``
(including ``MaxRetriesExceededError``). With ``task_acks_late`` and
``task_acks_on_failure_or_timeout=False`` the worker then rejects the message without requeue
and RabbitMQ moves it to the queue's dead-letter queue; the row records why, so
``manage.py dlq list`` and the admin can show it.

A message that kills its worker never reaches ``on_failure``; the broker dead-letters it after
``x-delivery-limit`` deliveries and ``x-death`` says so (reason ``delivery_limit``).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from celery import Task
from django.core.serializers.json import DjangoJSONEncoder

logger = logging.getLogger(__name__)

# Native delayed delivery (retries with a countdown on quorum queues) prefixes the routing key
# with 28 binary digits, e.g. "0.0. ... .1.notifications".
_DELAY_PREFIX = re.compile(r"^(?:[01]\.){28}")
MAX_ERROR_LENGTH = 4000
MAX_TRACEBACK_LENGTH = 20000


def queue_from_routing_key(routing_key: str | None) -> str:
    """The work queue a message was routed to (routing key = queue name in config/queues.py)."""
    return _DELAY_PREFIX.sub("", routing_key or "", count=1)


def _json_ready(value: Any) -> Any:
    """Task arguments as JSON (they came in a JSON message, but be safe with what a task got)."""
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except (TypeError, ValueError):
        return repr(value)


def task_failure_record(
    *,
    task_id: str,
    task_name: str,
    queue: str,
    args: Any,
    kwargs: Any,
    retries: int,
    error: str,
    traceback: str,
) -> None:
    from core.models import TaskFailure  # the task class is loaded before Django's apps

    TaskFailure.objects.create(
        task_id=task_id,
        task_name=task_name,
        queue=queue,
        args=_json_ready(list(args or [])),
        kwargs=_json_ready(dict(kwargs or {})),
        retries=retries,
        error=error[:MAX_ERROR_LENGTH],
        traceback=traceback[:MAX_TRACEBACK_LENGTH],
    )


class FailureRecordingTask(Task):
    """Base class of every task of the app (``Celery(task_cls=...)`` in config/celery_app.py)."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        delivery_info = self.request.delivery_info or {}
        try:
            task_failure_record(
                task_id=task_id,
                task_name=self.name,
                queue=queue_from_routing_key(delivery_info.get("routing_key")),
                args=args,
                kwargs=kwargs,
                retries=self.request.retries,
                error=f"{type(exc).__name__}: {exc}",
                traceback=str(einfo) if einfo is not None else "",
            )
        except Exception:  # recording must never change how the failure itself is handled
            logger.exception("Could not record the failure of task %s[%s]", self.name, task_id)
        from core.metrics import DEAD_LETTERED  # the task class is loaded before Django's apps

        DEAD_LETTERED.labels(queue_from_routing_key(delivery_info.get("routing_key")), "failed").inc()
        super().on_failure(exc, task_id, args, kwargs, einfo)
