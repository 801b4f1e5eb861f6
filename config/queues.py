"""RabbitMQ topology: work queues per concern, each dead-lettering to its own durable queue.

```
 publisher -> exchange "tasks" (topic) --routing key = queue name--> orders | inventory | email | webhooks
                                                                        | rejected without requeue,
                                                                        | or delivered too many times
                                                                        v
              exchange "dead-letter" (direct) --> orders.dlq | inventory.dlq | email.dlq | webhooks.dlq
```

Customer e-mail and merchant webhooks have a queue each: a merchant endpoint that answers slowly
holds a webhook worker process for at most its send deadline, and never delays an e-mail.

Work queues are quorum queues: they survive broker restarts, and their delivery limit bounds a
message that keeps crashing its worker (each crash returns it to the queue and counts one
delivery). Dead-lettering is at-least-once, so a dead letter is never dropped on the way.
The exchange is a topic exchange because Celery's native delayed delivery (used for retries
with a countdown on quorum queues) re-routes delayed messages with topic bindings.
"""

from __future__ import annotations

import re
from typing import Any

from kombu import Connection, Exchange, Queue

ORDERS = "orders"
INVENTORY = "inventory"
EMAIL = "email"
WEBHOOKS = "webhooks"
WORK_QUEUE_NAMES = (ORDERS, INVENTORY, EMAIL, WEBHOOKS)

# Deliveries of one message before the broker dead-letters it (crash loops, lost workers).
DELIVERY_LIMIT = 5

TASK_EXCHANGE = Exchange("tasks", type="topic", durable=True)
DEAD_LETTER_EXCHANGE = Exchange("dead-letter", type="direct", durable=True)


# Native delayed delivery (retries with a countdown on quorum queues) prefixes the routing key
# with 28 binary digits, e.g. "0.0. ... .1.webhooks".
_DELAY_PREFIX = re.compile(r"^(?:[01]\.){28}")


def dead_letter_queue_name(queue_name: str) -> str:
    return f"{queue_name}.dlq"


def queue_from_routing_key(routing_key: str | None) -> str:
    """The work queue a message was routed to: the routing key is the queue's name."""
    return _DELAY_PREFIX.sub("", routing_key or "", count=1)


def _work_queue(name: str) -> Queue:
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
        "x-dead-letter-routing-key": name,
        # At-least-once dead-lettering requires the queue to refuse publishes when full
        # rather than drop its oldest messages.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    return Queue(name, TASK_EXCHANGE, routing_key=name, durable=True, queue_arguments=arguments)


def _dead_letter_queue(name: str) -> Queue:
    return Queue(
        dead_letter_queue_name(name),
        DEAD_LETTER_EXCHANGE,
        routing_key=name,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


WORK_QUEUES = tuple(_work_queue(name) for name in WORK_QUEUE_NAMES)
DEAD_LETTER_QUEUES = tuple(_dead_letter_queue(name) for name in WORK_QUEUE_NAMES)


def declare_dead_letter_topology(connection: Connection) -> None:
    """Declare the dead-letter exchange and queues (idempotent; the broker keeps them)."""
    channel = connection.default_channel
    for queue in DEAD_LETTER_QUEUES:
        queue.bind(channel).declare()


def declare_topology(connection: Connection) -> None:
    """Declare every exchange and queue of the system (idempotent)."""
    declare_dead_letter_topology(connection)
    channel = connection.default_channel
    for queue in WORK_QUEUES:
        queue.bind(channel).declare()
