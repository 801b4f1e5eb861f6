"""The staff API for managing one endpoint, its secret, its circuit, pings, the event catalogue,
and retrying one delivery (through the recovery service)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from core.models import AuditEntry, OutboxMessage
from notifications.models import WebhookDelivery, WebhookEndpoint
from tests.factories import OperatorFactory, StaffFactory
from tests.notifications.factories import WebhookDeliveryFactory, WebhookEndpointFactory
from tests.notifications.receiver import Response, TricklingReceiver, standard_webhooks_verify

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/webhooks/endpoints/"
DELIVERIES = "/api/v1/webhooks/deliveries/"


@pytest.fixture
def staff_client(api_client):
    api_client.force_authenticate(OperatorFactory.create())
    return api_client


def staff_with(api_client, *codenames: str):
    user = StaffFactory.create()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    api_client.force_authenticate(user)
    return api_client


def test_one_endpoint_is_shown_with_its_circuit_and_never_its_secret(staff_client):
    endpoint = WebhookEndpointFactory.create(circuit_state="open", consecutive_failures=6)

    body = staff_client.get(f"{ENDPOINTS}{endpoint.pk}/").json()

    assert body["id"] == endpoint.pk
    assert body["circuit"]["state"] == "open" and body["circuit"]["consecutive_failures"] == 6
    assert "secret" not in body and endpoint.secret not in json.dumps(body)


def test_patch_changes_url_events_and_activity_and_reactivating_closes_the_circuit(staff_client):
    endpoint = WebhookEndpointFactory.create(
        active=False, circuit_state="open", consecutive_failures=9, disabled_at=timezone.now()
    )

    response = staff_client.patch(
        f"{ENDPOINTS}{endpoint.pk}/",
        {"url": "https://new.example.com/hooks", "events": ["order.paid"], "active": True},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["url"], body["events"], body["active"]) == ("https://new.example.com/hooks", ["order.paid"], True)
    assert body["circuit"] == {
        "state": "closed",
        "consecutive_failures": 0,
        "failing_since": None,
        "retry_at": None,
        "disabled_at": None,
    }


@pytest.mark.parametrize(
    ("change", "attr"),
    [({"events": ["order.teleported"]}, "events.0"), ({"events": []}, "events"), ({"url": "not a url"}, "url")],
)
def test_a_bad_patch_is_a_400_and_changes_nothing(staff_client, change, attr):
    endpoint = WebhookEndpointFactory.create(events=["order.paid"])

    response = staff_client.patch(f"{ENDPOINTS}{endpoint.pk}/", change, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == attr
    endpoint.refresh_from_db()
    assert endpoint.events == ["order.paid"]


def test_delete_stops_deliveries_hides_the_endpoint_and_keeps_its_history(staff_client):
    delivery = WebhookDeliveryFactory.create()
    endpoint = delivery.endpoint

    response = staff_client.delete(f"{ENDPOINTS}{endpoint.pk}/")

    assert response.status_code == 204
    assert staff_client.get(f"{ENDPOINTS}{endpoint.pk}/").status_code == 404
    assert endpoint.pk not in [e["id"] for e in staff_client.get(ENDPOINTS).json()["results"]]
    assert not WebhookEndpoint.objects.get(pk=endpoint.pk).active
    assert [d["id"] for d in staff_client.get(DELIVERIES).json()["results"]] == [delivery.pk]
    assert staff_client.delete(f"{ENDPOINTS}{endpoint.pk}/").status_code == 404


def test_rotating_shows_the_new_secret_once_and_both_sign_for_24_hours(staff_client, webhook_receiver):
    # given an endpoint and its secret
    endpoint = WebhookEndpointFactory.create(url=webhook_receiver.url)
    old = endpoint.secret

    # when staff rotate it
    response = staff_client.post(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/")

    # then the answer shows the new secret, and when the old one stops signing
    assert response.status_code == 200
    body = response.json()
    new = body["secret"]
    assert new.startswith("whsec_") and new != old
    expires = timezone.datetime.fromisoformat(body["previous_secret_expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=23, minutes=59) < expires - timezone.now() <= timedelta(hours=24)
    assert new not in json.dumps(staff_client.get(f"{ENDPOINTS}{endpoint.pk}/").json())

    # and a request carries two v1 signatures, one verifying with each secret
    staff_client.post(f"{ENDPOINTS}{endpoint.pk}/ping/")
    [request] = webhook_receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert standard_webhooks_verify(secret=secret, headers=request.headers, body=request.body)

    # and after 24 hours only the new one signs
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    staff_client.post(f"{ENDPOINTS}{endpoint.pk}/ping/")
    latest = webhook_receiver.requests[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    assert not standard_webhooks_verify(secret=old, headers=latest.headers, body=latest.body)
    assert standard_webhooks_verify(secret=new, headers=latest.headers, body=latest.body)


def test_ping_sends_a_signed_ping_now_and_answers_what_the_endpoint_replied(staff_client, webhook_receiver):
    endpoint = WebhookEndpointFactory.create(url=webhook_receiver.url)
    webhook_receiver.secret = endpoint.secret
    webhook_receiver.respond(Response(418, body=b"I am a teapot"))

    body = staff_client.post(f"{ENDPOINTS}{endpoint.pk}/ping/").json()

    assert body["succeeded"] is False
    assert (body["status_code"], body["body"], body["error"]) == (418, "I am a teapot", "HTTP 418")
    [request] = webhook_receiver.requests
    assert request.signature_valid
    sent = json.loads(request.body)
    assert (sent["type"], sent["sequence"], sent["data"]) == ("ping", None, {})
    assert not WebhookDelivery.objects.exists()  # a check, not a delivery


def test_a_ping_to_a_trickling_endpoint_ends_at_the_deadline(staff_client, settings):
    settings.WEBHOOK_DEADLINE_SECONDS = 1.0
    receiver = TricklingReceiver(interval=0.2).start()
    try:
        endpoint = WebhookEndpointFactory.create(url=receiver.url)
        body = staff_client.post(f"{ENDPOINTS}{endpoint.pk}/ping/").json()
    finally:
        receiver.stop()

    assert body["succeeded"] is False
    assert body["error"].startswith("timeout")
    assert body["duration_ms"] < 1500


def test_staff_close_and_open_a_circuit(staff_client):
    endpoint = WebhookEndpointFactory.create()

    opened = staff_client.post(f"{ENDPOINTS}{endpoint.pk}/circuit/", {"state": "open"}, format="json").json()
    closed = staff_client.post(f"{ENDPOINTS}{endpoint.pk}/circuit/", {"state": "closed"}, format="json").json()
    refused = staff_client.post(f"{ENDPOINTS}{endpoint.pk}/circuit/", {"state": "half_open"}, format="json")

    assert opened["circuit"]["state"] == "open" and opened["circuit"]["retry_at"] is not None
    assert closed["circuit"]["state"] == "closed" and closed["circuit"]["retry_at"] is None
    assert refused.status_code == 400


def test_the_event_catalogue_lists_every_order_state_and_ping(staff_client):
    body = staff_client.get("/api/v1/webhooks/event-types/").json()

    types = {row["type"]: row["subscribable"] for row in body}
    assert types["ping"] is False
    assert types["order.paid"] is True
    assert len([t for t in types if t.startswith("order.")]) == 9


@pytest.mark.parametrize("status", ["failed", "dead_lettered"])
def test_a_failed_or_dead_lettered_delivery_is_retried_through_the_recovery_service(staff_client, status):
    delivery = WebhookDeliveryFactory.create(status=status, attempt_count=8)

    response = staff_client.post(f"{DELIVERIES}{delivery.pk}/retry/")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert OutboxMessage.objects.filter(
        task_name="notifications.tasks.webhook_delivery_send_task", args=[delivery.pk]
    ).exists()


@pytest.mark.parametrize(("status", "code"), [("succeeded", "already_delivered"), ("pending", "not_resendable")])
def test_a_succeeded_or_pending_delivery_is_not_retried(staff_client, status, code):
    delivery = WebhookDeliveryFactory.create(status=status)

    response = staff_client.post(f"{DELIVERIES}{delivery.pk}/retry/")

    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == code
    assert not OutboxMessage.objects.exists()


def test_unknown_ids_are_404(staff_client):
    assert staff_client.get(f"{ENDPOINTS}999999/").status_code == 404
    assert staff_client.patch(f"{ENDPOINTS}999999/", {"active": False}, format="json").status_code == 404
    assert staff_client.post(f"{ENDPOINTS}999999/rotate-secret/").status_code == 404
    assert staff_client.post(f"{ENDPOINTS}999999/ping/").status_code == 404
    assert staff_client.post(f"{DELIVERIES}999999/retry/").status_code == 404


def test_deliveries_are_a_cursor_page_filtered_by_endpoint_and_status(staff_client):
    endpoint = WebhookEndpointFactory.create()
    mine = [WebhookDeliveryFactory.create(endpoint=endpoint, status="failed") for _ in range(3)]
    WebhookDeliveryFactory.create(endpoint=endpoint, status="succeeded")
    WebhookDeliveryFactory.create(status="failed")

    first = staff_client.get(DELIVERIES, {"endpoint": endpoint.pk, "status": "failed", "page_size": 2}).json()
    second = staff_client.get(first["next"]).json()

    assert [d["id"] for d in first["results"] + second["results"]] == [d.pk for d in reversed(mine)]
    assert second["next"] is None
    assert staff_client.get(DELIVERIES, {"cursor": "garbage"}).status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("get", f"{ENDPOINTS}{{id}}/", "view_webhookendpoint"),
        ("patch", f"{ENDPOINTS}{{id}}/", "change_webhookendpoint"),
        ("delete", f"{ENDPOINTS}{{id}}/", "delete_webhookendpoint"),
        ("post", f"{ENDPOINTS}{{id}}/rotate-secret/", "change_webhookendpoint"),
        ("post", f"{ENDPOINTS}{{id}}/ping/", "change_webhookendpoint"),
        ("post", f"{ENDPOINTS}{{id}}/circuit/", "change_webhookendpoint"),
        ("get", "/api/v1/webhooks/event-types/", "view_webhookendpoint"),
        ("post", f"{DELIVERIES}{{delivery}}/retry/", "change_webhookdelivery"),
    ],
)
def test_each_operation_needs_its_model_permission(api_client, method, path, permission):
    delivery = WebhookDeliveryFactory.create(status="failed")
    url = path.format(id=delivery.endpoint_id, delivery=delivery.pk)

    # staff without the permission: 403, nothing changed
    unprivileged = staff_with(api_client, "view_webhookdelivery")
    refused = getattr(unprivileged, method)(url, {}, format="json")
    assert refused.status_code == 403
    assert WebhookEndpoint.objects.get(pk=delivery.endpoint_id).deleted_at is None

    # with it: not a 403
    allowed = staff_with(api_client, permission)
    assert getattr(allowed, method)(url, {"state": "closed"}, format="json").status_code != 403


def test_customers_are_refused(api_client, customer):
    api_client.force_authenticate(customer)
    endpoint = WebhookEndpointFactory.create()

    assert api_client.get(f"{ENDPOINTS}{endpoint.pk}/").status_code == 403
    assert api_client.delete(f"{ENDPOINTS}{endpoint.pk}/").status_code == 403
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).deleted_at is None


def test_every_change_is_audited_as_its_staff_user_and_never_with_a_secret(api_client):
    operator = OperatorFactory.create()
    api_client.force_authenticate(operator)
    endpoint = WebhookEndpointFactory.create()
    delivery = WebhookDeliveryFactory.create(endpoint=endpoint, status="dead_lettered")

    api_client.patch(f"{ENDPOINTS}{endpoint.pk}/", {"events": ["order.paid"]}, format="json")
    rotated = api_client.post(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/").json()
    api_client.post(f"{ENDPOINTS}{endpoint.pk}/circuit/", {"state": "open"}, format="json")
    api_client.post(f"{DELIVERIES}{delivery.pk}/retry/")
    api_client.delete(f"{ENDPOINTS}{endpoint.pk}/")

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [e.action for e in entries] == [
        "webhook_endpoint.change",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.circuit",
        "webhook_delivery.resend",
        "webhook_endpoint.delete",
    ]
    assert {e.actor_id for e in entries} == {operator.pk}
    assert entries[0].before["events"] != entries[0].after["events"] == ["order.paid"]
    recorded = json.dumps([[e.before, e.after] for e in entries])
    assert rotated["secret"] not in recorded and endpoint.secret not in recorded
