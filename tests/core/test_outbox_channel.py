"""The after-commit publisher keeps one confirm-mode channel per broker connection."""

from __future__ import annotations

import pytest
from kombu import Connection

from config.celery_app import app
from core.models import OutboxMessage
from core.outbox import _publish_confirmed

pytestmark = [pytest.mark.flow, pytest.mark.django_db]

# A harmless task if a flow test's worker picks it up: the relay finds nothing to do.
HARMLESS_TASK = "core.tasks.outbox_relay_task"


def messages(count: int) -> list[OutboxMessage]:
    return [OutboxMessage(task_name=HARMLESS_TASK, args=[], kwargs={}) for _ in range(count)]


def test_batches_on_one_connection_share_one_confirmed_channel(broker_topology):
    with Connection(app.conf.broker_url) as connection:
        # given a first batch published and confirmed
        _publish_confirmed(messages(3), connection, timeout=10)
        first = connection._outbox_confirm_channel

        # when a second batch follows on the same connection
        _publish_confirmed(messages(2), connection, timeout=10)

        # then it went out on the same channel, whose confirms were all collected
        assert connection._outbox_confirm_channel is first
        assert first.last_tag == 5
        assert not first.unconfirmed


def test_a_closed_channel_is_replaced(broker_topology):
    with Connection(app.conf.broker_url) as connection:
        _publish_confirmed(messages(1), connection, timeout=10)
        first = connection._outbox_confirm_channel
        first.channel.close()

        _publish_confirmed(messages(1), connection, timeout=10)

        second = connection._outbox_confirm_channel
        assert second is not first
        assert second.last_tag == 1 and not second.unconfirmed
