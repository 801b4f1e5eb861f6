"""Operational surfaces that must not leak: /metrics, admin messages, API errors from middleware,
the payment callback with an unusable secret."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from notifications.models import WebhookEndpoint
from tests.admin_pages import forget_operations_readings
from tests.payments import payment_request

METRICS_TOKEN = "a-metrics-token-of-enough-length-1234"


@pytest.mark.django_db
@override_settings(METRICS_TOKEN=METRICS_TOKEN)
def test_metrics_wants_the_bearer_token_where_it_is_set(client: Client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {METRICS_TOKEN}").status_code == 401

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")

    assert response.status_code == 200
    assert b"orderservice_orders" in response.content
    forget_operations_readings()  # read by this scrape, with no orders: not for the next test


def test_the_workers_metrics_endpoint_wants_the_token_too():
    from wsgiref.util import setup_testing_defaults

    from core.metrics import _bearer_protected

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"metrics"]

    protected = _bearer_protected(app)
    answers: list[str] = []
    with override_settings(METRICS_TOKEN=METRICS_TOKEN):
        for header in (None, f"Bearer {METRICS_TOKEN}"):
            environ: dict[str, object] = {}
            setup_testing_defaults(environ)
            if header:
                environ["HTTP_AUTHORIZATION"] = header
            body = b"".join(protected(environ, lambda status, headers: answers.append(status)))
    assert answers == ["401 Unauthorized", "200 OK"]
    assert body == b"metrics"


@pytest.mark.django_db
def test_a_new_endpoint_secret_is_kept_in_the_session_not_in_a_cookie(client: Client):
    # given a superuser adding a webhook endpoint in the admin
    admin = User.objects.create_superuser("root", "root@example.com", "pass-for-tests")
    client.force_login(admin)

    response = client.post(
        "/admin/notifications/webhookendpoint/add/",
        {"url": "https://merchant.example.com/hooks", "events": ["order.paid"], "active": "on"},
    )

    assert response.status_code == 302, response.content[:2000]
    secret = WebhookEndpoint.objects.get().secret
    assert "messages" not in response.cookies
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    page = client.get(response["Location"]).content.decode()
    assert secret in page  # shown once, from the session


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["evil.example.com", "bad host!"])
def test_a_host_django_refuses_is_a_json_error_under_the_api(client: Client, host: str):
    response = client.get("/api/v1/products/", HTTP_HOST=host)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"][0]["code"] == "bad_request"


@pytest.mark.django_db
def test_a_refused_host_stays_an_html_page_outside_the_api(client: Client):
    response = client.get("/admin/", HTTP_HOST="evil.example.com")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_payment_callback_with_no_usable_secret_is_refused_not_an_error(client: Client):
    body, headers = payment_request({"type": "payment.succeeded", "order_id": 1, "amount": "1.00", "currency": "USD"})

    with override_settings(PAYMENT_WEBHOOK_SECRET=""):
        response = client.post(
            "/api/v1/payments/webhook/",
            body,
            content_type="application/json",
            headers=headers,
        )

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "invalid_signature"
