"""One delivery attempt, in process, against a local endpoint (the flow tests do it through
RabbitMQ and worker processes)."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from notifications import webhook_client
from notifications.models import DeliveryAttempt, SendLease, WebhookDelivery, WebhookEndpoint
from notifications.services import Outcome, webhook_delivery_send
from notifications.services.webhooks import SEND_LOCK_KIND
from tests.notifications.factories import WebhookDeliveryFactory, WebhookEndpointFactory
from tests.notifications.receiver import Response, TricklingReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(webhook_receiver) -> WebhookDelivery:
    endpoint = WebhookEndpointFactory.create(url=webhook_receiver.url)
    webhook_receiver.secret = endpoint.secret
    return WebhookDeliveryFactory.create(endpoint=endpoint)


def attempts_of(delivery: WebhookDelivery) -> list[DeliveryAttempt]:
    return list(delivery.attempts.order_by("number"))


def test_a_2xx_answer_is_a_success_recorded_with_its_attempt(delivery, webhook_receiver):
    # given an endpoint that answers 204
    webhook_receiver.respond(then=Response(204, body=b""))

    # when the delivery is attempted
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then it succeeded, with a signed request carrying the event
    assert result.outcome is Outcome.SENT
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.attempt_count == 1
    assert delivery.last_response_code == 204
    assert delivery.succeeded_at is not None
    [request] = webhook_receiver.requests
    assert request.signature_valid
    assert request.headers["webhook-id"] == str(delivery.event_id)
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body)["data"] == delivery.event.payload
    [attempt] = attempts_of(delivery)
    assert (attempt.number, attempt.status_code, attempt.error, attempt.retry_delay_seconds) == (
        1,
        204,
        "",
        None,
    )
    assert attempt.duration_ms >= 0


@override_settings(NOTIFY_MAX_RETRIES=3, NOTIFY_BACKOFF_BASE_SECONDS=2, NOTIFY_BACKOFF_MAX_SECONDS=600)
@pytest.mark.parametrize("status_code", [500, 503, 408, 429])
def test_a_transient_failure_is_retried_with_backoff(delivery, webhook_receiver, status_code):
    webhook_receiver.respond(then=Response(status_code))

    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=2)

    assert result.outcome is Outcome.RETRY
    assert result.retry_in is not None and 0 <= result.retry_in <= 4
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.next_attempt_at is not None
    assert attempts_of(delivery)[0].retry_delay_seconds == result.retry_in


@override_settings(NOTIFY_MAX_RETRIES=3)
def test_the_last_allowed_attempt_gives_up(delivery, webhook_receiver):
    webhook_receiver.respond(then=Response(500))

    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=3)

    assert result.outcome is Outcome.GAVE_UP
    assert result.detail == "gave up after 3 attempt(s): HTTP 500"
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD_LETTERED
    assert delivery.next_attempt_at is None


@pytest.mark.parametrize("status_code", [400, 401, 404, 410])
def test_a_4xx_answer_gives_up_at_once(delivery, webhook_receiver, status_code):
    webhook_receiver.respond(then=Response(status_code))

    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    assert result.outcome is Outcome.GAVE_UP
    assert result.detail == f"permanent failure: HTTP {status_code}"
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD_LETTERED


def test_a_redirect_is_not_followed(delivery, webhook_receiver, second_webhook_receiver):
    # given an endpoint that redirects elsewhere
    webhook_receiver.respond(then=Response(307, headers={"Location": second_webhook_receiver.url}))

    # when the delivery is attempted
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then the redirect is a permanent failure and its target never receives anything
    assert result.outcome is Outcome.GAVE_UP
    assert "HTTP 307 redirect to" in result.detail and "not followed" in result.detail
    assert second_webhook_receiver.requests == []


def test_a_slow_endpoint_times_out_and_is_retried(delivery, webhook_receiver, monkeypatch):
    monkeypatch.setattr(webhook_client, "READ_TIMEOUT_SECONDS", 0.3)
    webhook_receiver.respond(Response(200, delay=2))

    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    assert result.outcome is Outcome.RETRY
    [attempt] = attempts_of(delivery)
    assert attempt.status_code is None
    assert attempt.error.startswith("timeout: ReadTimeout")
    assert attempt.duration_ms < 1500


@pytest.mark.parametrize("in_headers", [True, False], ids=["headers", "body"])
@override_settings(WEBHOOK_DEADLINE_SECONDS=1.0)
def test_a_receiver_that_trickles_bytes_is_cut_off_at_the_attempts_deadline(in_headers):
    # given an endpoint that answers one byte every 0.2 s (each read well within its own timeout)
    receiver = TricklingReceiver(interval=0.2, in_headers=in_headers).start()
    try:
        endpoint = WebhookEndpointFactory.create(url=receiver.url)
        delivery = WebhookDeliveryFactory.create(endpoint=endpoint)

        # when the delivery is attempted
        result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)
    finally:
        receiver.stop()

    # then the attempt ends at its total deadline, as a timeout to retry
    assert result.outcome is Outcome.RETRY
    [attempt] = attempts_of(delivery)
    assert attempt.error.startswith("timeout: ReadTimeout"), attempt.error
    assert 1000 <= attempt.duration_ms < 1500


def test_a_refused_connection_is_retried(webhook_receiver):
    # given an endpoint where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = WebhookDeliveryFactory.create(
        endpoint=WebhookEndpointFactory.create(url=f"http://127.0.0.1:{port}/hooks")
    )

    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    assert result.outcome is Outcome.RETRY
    assert attempts_of(delivery)[0].error.startswith("ConnectError")


def test_only_the_start_of_a_large_answer_is_read_and_kept(delivery, webhook_receiver):
    webhook_receiver.respond(then=Response(200, body=b"x" * 1_000_000))

    webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    assert attempts_of(delivery)[0].response_body == "x" * webhook_client.MAX_RESPONSE_BYTES


def test_a_delivery_that_already_succeeded_is_not_sent_again(delivery, webhook_receiver):
    # given a delivery that succeeded
    webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # when its task runs again (a redelivered or replayed message)
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then nothing is sent and nothing changes
    assert result.outcome is Outcome.SKIPPED
    assert len(webhook_receiver.requests) == 1
    assert DeliveryAttempt.objects.count() == 1


def test_a_delivery_being_sent_by_another_worker_is_tried_again_once_its_lease_is_over(
    delivery, webhook_receiver, settings
):
    # given another worker holding the delivery's send lease
    held_until = timezone.now() + timedelta(seconds=60)
    SendLease.objects.create(kind=SEND_LOCK_KIND, object_id=delivery.pk, holder=uuid.uuid4(), expires_at=held_until)

    # when the delivery is attempted here too, at its last attempt
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=settings.NOTIFY_MAX_RETRIES)

    # then this copy sends nothing now and retries once the lease must be over (released, or
    # expired if that worker died before recording), last attempt or not
    assert result.outcome is Outcome.RETRY
    assert result.retry_in == settings.NOTIFY_SEND_LEASE_SECONDS
    assert webhook_receiver.requests == []
    assert SendLease.objects.get().expires_at == held_until


def test_a_deactivated_endpoint_is_not_sent_to(delivery, webhook_receiver):
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(active=False)

    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    assert result.outcome is Outcome.SKIPPED
    assert webhook_receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.last_error == "endpoint deactivated; not sent"


@override_settings(WEBHOOK_ALLOW_PRIVATE_NETWORKS=False)
def test_a_private_target_is_refused_when_private_networks_are_not_allowed(delivery, webhook_receiver):
    # given an endpoint on the loopback interface, and private networks not allowed

    # when the delivery is attempted
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then no request is made, and the refusal is permanent and recorded
    assert webhook_receiver.requests == []
    assert result.outcome is Outcome.GAVE_UP
    assert result.detail == "permanent failure: refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address"
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD_LETTERED
    assert attempts_of(delivery)[0].status_code is None


def test_the_request_goes_to_the_address_vetted_once_with_the_original_host_header(webhook_receiver, monkeypatch):
    # given a name that resolves to the endpoint first, and elsewhere on any later lookup (rebinding)
    answers = iter([["127.0.0.1"]])
    looked_up = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_dns(host, port, *args, **kwargs):
        if host != "merchant.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        looked_up.append(host)
        address = next(answers, ["10.255.255.1"])[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    endpoint = WebhookEndpointFactory.create(url=f"http://merchant.test:{webhook_receiver.port}/hooks")
    webhook_receiver.secret = endpoint.secret
    delivery = WebhookDeliveryFactory.create(endpoint=endpoint)

    # when the delivery is attempted
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then the name was resolved once and the request reached the vetted address, named as configured
    assert result.outcome is Outcome.SENT
    assert looked_up == ["merchant.test"]
    [request] = webhook_receiver.requests
    assert request.headers["host"] == f"merchant.test:{webhook_receiver.port}"
    assert request.signature_valid


def test_the_next_vetted_address_is_tried_when_the_first_refuses_the_connection(webhook_receiver, monkeypatch):
    # given a name whose first answer has no listener (IPv6 first, a server on IPv4 only)
    real_getaddrinfo = socket.getaddrinfo

    def dual_stack_dns(host, port, *args, **kwargs):
        if host != "dual.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", dual_stack_dns)
    endpoint = WebhookEndpointFactory.create(url=f"http://dual.test:{webhook_receiver.port}/hooks")
    webhook_receiver.secret = endpoint.secret
    delivery = WebhookDeliveryFactory.create(endpoint=endpoint)

    # when the delivery is attempted
    result = webhook_delivery_send(delivery_id=delivery.pk, attempt=1)

    # then it reached the endpoint at its second address
    assert result.outcome is Outcome.SENT
    assert len(webhook_receiver.requests) == 1
