from __future__ import annotations

import pytest
from django.test import override_settings

from notifications.models import WebhookDelivery, WebhookEndpoint
from tests.factories import OperatorFactory, UserFactory
from tests.notifications.factories import (
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
)

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/webhooks/endpoints/"
DELIVERIES = "/api/v1/webhooks/deliveries/"


@pytest.fixture
def staff_client(api_client):
    api_client.force_authenticate(OperatorFactory.create())
    return api_client


@pytest.mark.parametrize("path", [ENDPOINTS, DELIVERIES])
def test_anonymous_requests_are_refused_with_401(api_client, path):
    response = api_client.get(path)

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "path"), [("get", ENDPOINTS), ("post", ENDPOINTS), ("get", DELIVERIES)])
def test_customers_are_refused_with_403(api_client, method, path):
    api_client.force_authenticate(UserFactory.create())

    response = getattr(api_client, method)(path, {}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "permission_denied",
                "detail": "You do not have permission to perform this action.",
                "attr": None,
            }
        ],
    }


def test_creating_an_endpoint_answers_201_with_its_secret_once(staff_client):
    # when staff create an endpoint
    response = staff_client.post(
        ENDPOINTS,
        {"url": "https://shop.example.com/hooks", "events": ["order.paid", "order.reserved", "order.paid"]},
        format="json",
    )

    # then the answer shows the secret
    assert response.status_code == 201
    body = response.json()
    endpoint = WebhookEndpoint.objects.get()
    assert body == {
        "id": endpoint.pk,
        "url": "https://shop.example.com/hooks",
        "events": ["order.reserved", "order.paid"],
        "active": True,
        "created_at": body["created_at"],
        "circuit": {
            "state": "closed",
            "consecutive_failures": 0,
            "failing_since": None,
            "retry_at": None,
            "disabled_at": None,
        },
        "secret": endpoint.secret,
    }
    assert body["secret"].startswith("whsec_")

    # and listing never shows it again
    listed = staff_client.get(ENDPOINTS).json()
    assert listed["count"] == 1
    assert "secret" not in listed["results"][0]
    assert endpoint.secret not in str(listed)


def test_invalid_endpoints_are_refused_with_field_errors(staff_client):
    response = staff_client.post(ENDPOINTS, {"url": "not a url", "events": ["order.teleported"]}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error"
    assert {error["attr"] for error in body["errors"]} == {"url", "events.0"}


def test_an_endpoint_needs_at_least_one_event(staff_client):
    response = staff_client.post(ENDPOINTS, {"url": "https://shop.example.com/h", "events": []}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "events"


@override_settings(WEBHOOK_ALLOW_PRIVATE_NETWORKS=False)
@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hooks", "http://169.254.169.254/latest", "http://[::1]/h"])
def test_a_private_address_is_refused_when_private_networks_are_not_allowed(staff_client, url):
    response = staff_client.post(ENDPOINTS, {"url": url, "events": ["order.paid"]}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unsafe_webhook_url"
    assert not WebhookEndpoint.objects.exists()


def test_endpoints_are_listed_newest_first_and_paginated(staff_client):
    endpoints = WebhookEndpointFactory.create_batch(3)

    body = staff_client.get(ENDPOINTS).json()

    assert body["count"] == 3
    assert body["next"] is None and body["previous"] is None
    assert [e["id"] for e in body["results"]] == [e.pk for e in reversed(endpoints)]


def test_deliveries_are_listed_with_status_response_code_and_attempts(staff_client):
    # given a succeeded delivery and a failing one
    ok = WebhookDeliveryFactory.create(status=WebhookDelivery.Status.SUCCEEDED, attempt_count=1, last_response_code=200)
    failing = WebhookDeliveryFactory.create(
        status=WebhookDelivery.Status.FAILED, attempt_count=2, last_response_code=503
    )

    # when staff list them, all or by status
    every = staff_client.get(DELIVERIES).json()
    failed = staff_client.get(DELIVERIES, {"status": "failed"}).json()

    # then each shows its status, last response code and attempt count
    assert "count" not in every  # a cursor page: nothing is counted
    assert [d["id"] for d in every["results"]] == [failing.pk, ok.pk]
    assert len(failed["results"]) == 1
    row = failed["results"][0]
    assert row["status"] == "failed"
    assert row["last_response_code"] == 503
    assert row["attempts"] == 2
    assert row["event_id"] == str(failing.event_id)
    assert row["event_type"] == "order.reserved"
    assert row["endpoint"] == {"id": failing.endpoint_id, "url": failing.endpoint.url}


def test_deliveries_can_be_filtered_by_endpoint(staff_client):
    delivery = WebhookDeliveryFactory.create()
    WebhookDeliveryFactory.create()

    body = staff_client.get(DELIVERIES, {"endpoint": delivery.endpoint_id}).json()

    assert [d["id"] for d in body["results"]] == [delivery.pk]


def test_an_unknown_status_filter_is_a_validation_error(staff_client):
    response = staff_client.get(DELIVERIES, {"status": "lost"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "status"
