"""What a worker does with a message that fails for good: it goes to the dead-letter queue.

``FailureRecordingTask`` is every task's base class (``task_cls`` of the Celery app). Celery
calls ``on_failure`` in the pool process when a task raises anything but ``Retry`` (including
``MaxRetriesExceededError``); with ``task_acks_late`` and ``task_acks_on_failure_or_timeout=False``
the worker then rejects the message without requeue and RabbitMQ moves it to the queue's
dead-letter queue. The ``TaskFailure`` row says why, for ``manage.py dlq list`` and the admin.

``DeadLetteringConsumer`` (``worker_consumer``) does the same for a message that cannot be
decoded, which Celery would otherwise drop. A message that kills its worker reaches neither: the
broker dead-letters it after ``x-delivery-limit`` deliveries (``x-death`` reason ``delivery_limit``).

A retry is a new message. When the broker does not take it (a cluster between leaders, a node
restarting), Celery rejects the running message without requeue, which would dead-letter work that
has not failed; ``FailureRecordingTask.retry`` returns it to its queue instead, after a pause. The
delivery limit still bounds how often that happens to one message.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.worker.consumer import Consumer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from config.queues import queue_from_routing_key
from core.metrics import DEAD_LETTERED
from core.retention import rows_prune

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 4000
MAX_TRACEBACK_LENGTH = 20000
# How long a worker holds a message whose retry the broker did not take before returning it.
UNPUBLISHED_RETRY_PAUSE_SECONDS = 2.0


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
    # Not at the top: Celery loads the task class when the app is finalised, before Django's
    # apps are, and a model cannot be imported until they are.
    from core.models import TaskFailure

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
        queue = queue_from_routing_key((self.request.delivery_info or {}).get("routing_key"))
        try:
            task_failure_record(
                task_id=task_id,
                task_name=self.name,
                queue=queue,
                args=args,
                kwargs=kwargs,
                retries=self.request.retries,
                error=f"{type(exc).__name__}: {exc}",
                traceback=str(einfo) if einfo is not None else "",
            )
        except Exception:  # recording must never change how the failure itself is handled
            logger.exception("Could not record the failure of task %s[%s]", self.name, task_id)
        DEAD_LETTERED.labels(queue, "failed").inc()
        super().on_failure(exc, task_id, args, kwargs, einfo)

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's retry, except that a retry the broker did not take returns the message to its queue."""
        try:
            return super().retry(*args, **kwargs)
        except Reject as unpublished:
            reason, requeue = unpublished.args  # Reject(reason, requeue); the stubs declare neither
            if requeue:
                raise
            logger.warning(
                "Retry of task %s[%s] not published (%s); its message goes back to its queue",
                self.name,
                self.request.id,
                reason,
            )
            time.sleep(UNPUBLISHED_RETRY_PAUSE_SECONDS)
            raise Reject(reason, requeue=True) from None


class DeadLetteringConsumer(Consumer):
    """The worker's consumer (``worker_consumer``): an undecodable message is dead-lettered, not dropped."""

    class Blueprint(Consumer.Blueprint):  # type: ignore[misc,valid-type]  # celery-types has no Blueprint
        # Celery's delayed-delivery step, set up once through the failover URL (config/celery_app.py).
        default_steps = [
            "config.celery_app:FailoverDelayedDelivery" if step.endswith(":DelayedDelivery") else step
            for step in Consumer.Blueprint.default_steps
        ]

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        logger.error("Undecodable message dead-lettered (content type %r): %s", message.content_type, exc)
        message.reject(requeue=False)
        queue = queue_from_routing_key((message.delivery_info or {}).get("routing_key"))
        DEAD_LETTERED.labels(queue, "undecodable").inc()


def task_failure_prune() -> int:
    """Delete failures recorded more than ``TASK_FAILURE_RETENTION_DAYS`` ago, in batches; returns
    how many. A dead letter older than that is still listed by ``manage.py dlq``, without its error."""
    from core.models import TaskFailure

    cutoff = timezone.now() - timedelta(days=settings.TASK_FAILURE_RETENTION_DAYS)
    return rows_prune(TaskFailure.objects.filter(failed_at__lt=cutoff), age_field="failed_at")
