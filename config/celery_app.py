"""The Celery application ``config``: ``celery -A config worker`` and ``celery -A config beat``.

Messages are JSON, persistent and published with broker confirms; tasks are acknowledged after
they run, a task whose worker dies is returned to its queue, and a task that fails for good is
rejected without requeue so RabbitMQ moves it to the dead-letter queue (config/queues.py).
The task class and the consumer that do the dead-lettering are core's (core/failures.py),
named by dotted path: this module imports nothing from ``core`` or the apps.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click
from celery import Celery, bootsteps, signals
from celery.worker.consumer.delayed_delivery import DelayedDelivery
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from config import queues
from config.metrics_dirs import metrics_dir_create, metrics_dir_remove

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

logger = logging.getLogger(__name__)


def _started_as_worker() -> bool:
    """True in ``celery -A config worker``: Celery's command line imports this module while
    its ``worker`` sub-command is chosen but not yet run (``invoked_subcommand``)."""
    context = click.get_current_context(silent=True)
    return context is not None and context.invoked_subcommand == "worker"


# The worker's pool processes keep their counters in this worker's own metrics directory
# (config/metrics_dirs.py). It must exist before the task modules, and prometheus_client with
# them, are imported: Celery imports them before any worker signal is sent, hence here.
worker_metrics_dir: Path | None = metrics_dir_create("worker") if _started_as_worker() else None


@signals.worker_shutdown.connect
def _remove_worker_metrics_dir(**kwargs: Any) -> None:
    if worker_metrics_dir is not None:
        metrics_dir_remove(worker_metrics_dir)


@signals.task_prerun.connect
@signals.task_postrun.connect
def _recycle_database_connections(sender: Any = None, **kwargs: Any) -> None:
    """Treat each task as Django treats a request: keep the connection for ``CONN_MAX_AGE``, but
    close it if it broke or was left inside a transaction, and check it before its first use
    (``CONN_HEALTH_CHECKS``). Celery's own Django fix-up would close it after every task (unless
    ``CELERY_DB_REUSE_MAX``, set in the settings), and a new PostgreSQL connection per task
    costs more CPU than most tasks.
    """
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # inside the caller's transaction: leave its connection alone
    from django.db import close_old_connections

    close_old_connections()


# Every task records its final failure (core/failures.py) before its message is dead-lettered.
app = Celery("config", task_cls="core.failures:FailureRecordingTask")
app.config_from_object("django.conf:settings", namespace="CELERY")


class DeclareDeadLetterTopology(bootsteps.StartStopStep):
    """Declare the dead-letter exchange and queues each time the worker (re)connects."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, c: Any) -> None:
        queues.declare_dead_letter_topology(c.connection)


app.steps["consumer"].add(DeclareDeadLetterTopology)


class FailoverDelayedDelivery(DelayedDelivery):
    """Celery's native delayed delivery (retries with a countdown) set up once, through a
    connection that fails over between the broker URLs. The worker's consumer (core/failures.py)
    runs it in place of Celery's own step.

    Celery's step sets it up on each URL of a failover list in turn, as if each named another
    broker, and retries a node that is down for about 17 s before the worker consumes again: a
    worker whose node died would stand still that long. The nodes of a cluster share exchanges
    and queues, so one node that answers is enough.
    """

    def start(self, c: Any) -> None:
        try:
            with c.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=max(len(connection.alt), 1))
                queue_type = c.app.conf.broker_native_delayed_delivery_queue_type
                declare_native_delayed_delivery_exchanges_and_queues(connection, queue_type)
                for queue in c.app.amqp.queues.values():
                    bind_queue_to_native_delayed_delivery_exchange(connection, queue)
        except Exception as exc:  # declared by an earlier start, they are still there
            logger.warning("Could not set up delayed delivery: %s", exc)


app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_delivery_mode="persistent",
    task_ignore_result=True,
    result_backend=None,
    task_queues=queues.WORK_QUEUES,
    task_default_queue=queues.ORDERS,
    task_default_exchange=queues.TASK_EXCHANGE.name,
    task_default_exchange_type=queues.TASK_EXCHANGE.type,
    task_default_routing_key=queues.ORDERS,
    task_routes={
        "inventory.tasks.*": {"queue": queues.INVENTORY, "routing_key": queues.INVENTORY},
        "orders.tasks.order_reserve_task": {"queue": queues.INVENTORY, "routing_key": queues.INVENTORY},
        # Customer e-mail never waits behind merchant webhooks (ARCHITECTURE.md, invariant 9). The
        # fan-out writes e-mails as well as deliveries, so it travels with e-mail.
        "notifications.tasks.webhook_*": {"queue": queues.WEBHOOKS, "routing_key": queues.WEBHOOKS},
        "notifications.tasks.email_*": {"queue": queues.EMAIL, "routing_key": queues.EMAIL},
        "notifications.tasks.notification_fan_out_task": {"queue": queues.EMAIL, "routing_key": queues.EMAIL},
        "notifications.tasks.webhook_endpoint_disabled_mail_task": {"queue": queues.EMAIL, "routing_key": queues.EMAIL},
    },
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=3,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # A task that raised after its last retry is rejected without requeue: dead-lettered.
    task_acks_on_failure_or_timeout=False,
    worker_prefetch_multiplier=1,
    worker_consumer="core.failures:DeadLetteringConsumer",
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    # Read on every publish, here at Celery's defaults: a key no source holds is looked up in
    # each of them (the Django settings' miss raises and catches an AttributeError), which cost
    # these four about 0.3 ms per published task on a 2-core machine (docs/performance.md).
    task_always_eager=False,
    task_send_sent_event=False,
    task_repr_maxlevels=3,
    broker_pool_acquire_timeout=None,
)
app.autodiscover_tasks()
