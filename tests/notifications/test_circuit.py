"""The circuit of a merchant endpoint, in process against a local receiver and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from core.models import OutboxMessage
from notifications.lock_objects import endpoint_slot
from notifications.metrics import WebhookCircuitCollector
from notifications.models import CircuitState, WebhookDelivery, WebhookEndpoint
from notifications.services import Outcome, webhook_delivery_send
from notifications.services.circuit import (
    DISABLED_MAIL_TASK,
    circuit_admit,
    circuit_cooldown_seconds,
    webhook_endpoint_circuit_set,
    webhook_endpoint_disabled_mail,
)
from tests.factories import StaffFactory
from tests.notifications.factories import (
    NotificationEventFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
    order_payload,
)
from tests.notifications.receiver import Response

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("circuit_settings"),
]
FAILURES = 3


@pytest.fixture
def circuit_settings(settings):
    settings.WEBHOOK_CIRCUIT_FAILURES = FAILURES
    settings.WEBHOOK_CIRCUIT_COOLDOWN_SECONDS = 30
    settings.WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS = 3600
    settings.NOTIFY_MAX_RETRIES = 8


@pytest.fixture
def endpoint(webhook_receiver) -> WebhookEndpoint:
    endpoint = WebhookEndpointFactory.create(url=webhook_receiver.url)
    webhook_receiver.secret = endpoint.secret
    return endpoint


def deliveries(endpoint: WebhookEndpoint, count: int) -> list[WebhookDelivery]:
    """Deliveries of ``count`` different orders' first events (no sequence holds one back)."""
    made = []
    for n in range(count):
        event = NotificationEventFactory.create(payload=order_payload(id=500 + n), order_id=500 + n, sequence=1)
        made.append(WebhookDeliveryFactory.create(endpoint=endpoint, event=event, order_id=500 + n, sequence=1))
    return made


def refreshed(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.refresh_from_db()
    return endpoint


def test_consecutive_failures_open_the_circuit_and_deliveries_then_wait_unsent(endpoint, webhook_receiver):
    # given an endpoint that fails everything
    webhook_receiver.respond(then=Response(503))
    batch = deliveries(endpoint, FAILURES + 2)

    # when as many deliveries as the threshold are attempted
    results = [webhook_delivery_send(delivery_id=d.pk, attempt=1) for d in batch[:FAILURES]]

    # then the last failure opened the circuit: that delivery waits for it, not for a retry
    assert [r.outcome for r in results] == [Outcome.RETRY] * (FAILURES - 1) + [Outcome.WAIT]
    endpoint = refreshed(endpoint)
    assert endpoint.circuit_state == CircuitState.OPEN
    assert endpoint.consecutive_failures == FAILURES
    assert endpoint.circuit_openings == 1
    cooldown = (endpoint.circuit_retry_at - timezone.now()).total_seconds()
    assert 25 <= cooldown <= 30

    # and while it is open the other deliveries wait, unsent, spending no attempt
    waiting = webhook_delivery_send(delivery_id=batch[FAILURES].pk, attempt=1)
    assert waiting.outcome is Outcome.WAIT
    assert waiting.retry_in is not None and waiting.retry_in >= cooldown
    assert len(webhook_receiver.requests) == FAILURES
    untouched = WebhookDelivery.objects.get(pk=batch[FAILURES].pk)
    assert untouched.attempt_count == 0 and untouched.status == WebhookDelivery.Status.PENDING
    assert untouched.last_error.startswith("circuit open until")


def test_a_last_attempt_that_meets_an_open_circuit_is_not_dead_lettered(endpoint, webhook_receiver, settings):
    # given a delivery at its last allowed attempt, and an endpoint one failure from opening
    webhook_receiver.respond(then=Response(500))
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=FAILURES - 1)
    [delivery] = deliveries(endpoint, 1)

    # when that attempt fails and opens the circuit
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=settings.NOTIFY_MAX_RETRIES)

    # then the delivery waits for the circuit instead of being dead-lettered
    assert result.outcome is Outcome.WAIT
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == WebhookDelivery.Status.FAILED


def test_after_the_cooldown_one_probe_goes_and_its_success_closes_the_circuit(endpoint, webhook_receiver):
    # given an open circuit whose cool-down is over
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        circuit_state=CircuitState.OPEN,
        consecutive_failures=7,
        failing_since=timezone.now() - timedelta(hours=2),
        circuit_openings=3,
        circuit_retry_at=timezone.now() - timedelta(seconds=1),
    )
    probe, other = deliveries(endpoint, 2)
    webhook_receiver.respond(then=Response(200))

    # when two deliveries look at once, only one is the probe
    now = timezone.now()
    first = circuit_admit(endpoint_id=endpoint.pk, now=now)
    second = circuit_admit(endpoint_id=endpoint.pk, now=now)
    assert first.probe and first.wait_seconds is None
    assert not second.probe and second.wait_seconds is not None
    assert refreshed(endpoint).circuit_state == CircuitState.HALF_OPEN

    # and when the probe's holder is gone past its lease, the next delivery takes the probe over
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(circuit_retry_at=timezone.now() - timedelta(seconds=1))
    assert webhook_delivery_send(delivery_id=probe.pk, attempt=1).outcome is Outcome.SENT

    # then its success closed the circuit, forgetting the failures, and the others flow
    endpoint = refreshed(endpoint)
    assert (endpoint.circuit_state, endpoint.consecutive_failures, endpoint.failing_since) == ("closed", 0, None)
    assert (endpoint.circuit_openings, endpoint.circuit_retry_at) == (0, None)
    assert webhook_delivery_send(delivery_id=other.pk, attempt=1).outcome is Outcome.SENT


def test_a_failed_probe_opens_the_circuit_again_for_longer_up_to_an_hour(endpoint, webhook_receiver):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        circuit_state=CircuitState.OPEN, circuit_openings=2, circuit_retry_at=timezone.now() - timedelta(seconds=1)
    )
    [probe] = deliveries(endpoint, 1)
    webhook_receiver.respond(then=Response(502))

    result = webhook_delivery_send(delivery_id=probe.pk, attempt=1)

    assert result.outcome is Outcome.WAIT  # the probe's failure spends none of its attempts
    endpoint = refreshed(endpoint)
    assert endpoint.circuit_state == CircuitState.OPEN and endpoint.circuit_openings == 3
    assert 115 <= (endpoint.circuit_retry_at - timezone.now()).total_seconds() <= 120
    assert [circuit_cooldown_seconds(openings=n) for n in (1, 2, 3, 7, 8, 50)] == [30, 60, 120, 1920, 3600, 3600]


def test_an_endpoint_failing_for_three_days_is_disabled_and_staff_are_mailed(endpoint, webhook_receiver):
    # given an endpoint failing since just over 72 hours ago, and staff with and without the permission
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=400, failing_since=timezone.now() - timedelta(hours=72, minutes=1)
    )
    webhook_receiver.respond(then=Response(500))
    [delivery] = deliveries(endpoint, 1)
    allowed = StaffFactory.create(email="ops@example.com")
    allowed.user_permissions.add(Permission.objects.get(codename="change_webhookendpoint"))
    StaffFactory.create(email="viewer@example.com")

    # when one more attempt fails
    webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then the endpoint is deactivated, and the e-mail to staff is queued with the change
    endpoint = refreshed(endpoint)
    assert not endpoint.active and endpoint.disabled_at is not None
    assert OutboxMessage.objects.filter(task_name=DISABLED_MAIL_TASK, args=[endpoint.pk]).exists()
    # and it goes to the staff who may change endpoints
    assert webhook_endpoint_disabled_mail(endpoint_id=endpoint.pk) == 1
    [message] = mail.outbox
    assert message.to == ["ops@example.com"]
    assert f"Webhook endpoint {endpoint.pk} disabled" in message.subject
    assert endpoint.url in message.body


@override_settings(WEBHOOK_DISABLE_AFTER_HOURS=72)
def test_a_success_in_between_restarts_the_three_days(endpoint, webhook_receiver):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=2, failing_since=timezone.now() - timedelta(hours=80)
    )
    first, second = deliveries(endpoint, 2)
    webhook_receiver.respond(Response(200), then=Response(500))

    webhook_delivery_send(delivery_id=first.pk, attempt=1)
    webhook_delivery_send(delivery_id=second.pk, attempt=1)

    endpoint = refreshed(endpoint)
    assert endpoint.active
    assert endpoint.consecutive_failures == 1


def test_staff_close_or_open_a_circuit_by_hand(endpoint):
    opened = webhook_endpoint_circuit_set(endpoint_id=endpoint.pk, state="open", actor=None)
    assert opened.circuit_state == CircuitState.OPEN
    assert (opened.circuit_retry_at - timezone.now()).total_seconds() > 3500

    closed = webhook_endpoint_circuit_set(endpoint_id=endpoint.pk, state="closed", actor=None)
    assert (closed.circuit_state, closed.circuit_retry_at, closed.consecutive_failures) == ("closed", None, 0)


def test_the_gauge_counts_endpoints_by_state_without_their_ids():
    WebhookEndpointFactory.create_batch(2)
    WebhookEndpointFactory.create(circuit_state=CircuitState.OPEN)
    WebhookEndpointFactory.create(circuit_state=CircuitState.OPEN, active=False)

    [family] = list(WebhookCircuitCollector().collect())

    samples = {sample.labels["state"]: sample.value for sample in family.samples}
    assert samples == {"closed": 2, "open": 1, "half_open": 0, "inactive": 1}
    assert all(set(sample.labels) == {"state"} for sample in family.samples)


def test_failures_that_hold_senders_long_open_the_circuit_before_the_count_is_reached(
    endpoint, webhook_receiver, settings
):
    # given an endpoint that answers nothing within the deadline, and failures that open the
    # circuit once they held senders for two deadlines in all
    settings.WEBHOOK_DEADLINE_SECONDS = 0.5
    settings.WEBHOOK_CIRCUIT_FAILURE_SECONDS = 1.0
    webhook_receiver.respond(then=Response(200, delay=2))
    first, second, third = deliveries(endpoint, 3)

    # when two attempts run to the deadline
    results = [webhook_delivery_send(delivery_id=d.pk, attempt=1).outcome for d in (first, second)]

    # then the second opened the circuit, fewer than FAILURES failures in
    assert results == [Outcome.RETRY, Outcome.WAIT]
    endpoint = refreshed(endpoint)
    assert endpoint.circuit_state == CircuitState.OPEN
    assert endpoint.consecutive_failures == 2 < FAILURES
    assert endpoint.consecutive_failure_seconds >= 1.0
    # and the next delivery waits without being sent
    assert webhook_delivery_send(delivery_id=third.pk, attempt=1).outcome is Outcome.WAIT
    assert len(webhook_receiver.requests) == 2


def test_quick_failures_open_the_circuit_only_at_the_count(endpoint, webhook_receiver):
    # given an endpoint that fails at once
    webhook_receiver.respond(then=Response(503))
    *batch, last = deliveries(endpoint, FAILURES)

    # when fewer than FAILURES attempts fail quickly
    for delivery in batch:
        webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then the circuit stays closed, and a success forgets the time they took
    assert refreshed(endpoint).circuit_state == CircuitState.CLOSED
    assert refreshed(endpoint).consecutive_failure_seconds > 0
    webhook_receiver.respond(then=Response(200))
    assert webhook_delivery_send(delivery_id=last.pk, attempt=1).outcome is Outcome.SENT
    endpoint = refreshed(endpoint)
    assert (endpoint.consecutive_failures, endpoint.consecutive_failure_seconds) == (0, 0)


def test_an_endpoint_holds_at_most_its_send_slots_and_a_delivery_beyond_them_waits_unsent(
    endpoint, webhook_receiver, settings
):
    # given an endpoint whose two send slots are both held (two attempts in flight elsewhere)
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 2
    first, second = deliveries(endpoint, 2)
    with endpoint_slot(endpoint_id=endpoint.pk, slots=2) as one, endpoint_slot(endpoint_id=endpoint.pk, slots=2) as two:
        assert one and two
        # when a third delivery is due
        result = webhook_delivery_send(delivery_id=first.pk, attempt=1)

        # then it waits, unsent, spending no attempt
        assert result.outcome is Outcome.WAIT
        assert "send slots are in use" in result.detail
        assert webhook_receiver.requests == []
        assert WebhookDelivery.objects.get(pk=first.pk).attempt_count == 0

    # and once a slot is free it goes
    assert webhook_delivery_send(delivery_id=first.pk, attempt=1).outcome is Outcome.SENT
    assert webhook_delivery_send(delivery_id=second.pk, attempt=1).outcome is Outcome.SENT


def test_a_delivery_that_keeps_finding_the_slots_taken_looks_again_less_often_up_to_the_deadline(endpoint, settings):
    # given an endpoint whose one send slot stays held (an attempt hanging until the deadline)
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 1
    settings.WEBHOOK_DEADLINE_SECONDS = 15
    (delivery,) = deliveries(endpoint, 1)
    with endpoint_slot(endpoint_id=endpoint.pk, slots=1) as held:
        assert held
        # when a delivery looks again and again
        waits = [webhook_delivery_send(delivery_id=delivery.pk, attempt=1, waited=n).retry_in for n in range(8)]

    # then it looks soon at first, less often each time, and never later than the slot must be free
    assert waits[0] <= 2 and waits[2] >= 4 and waits[7] >= 8, waits
    assert all(wait <= 15 for wait in waits), waits
