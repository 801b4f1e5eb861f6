"""The payment provider's signed callback."""

import time

import pytest
from rest_framework.test import APIClient

from orders.models import Order, OrderEvent, PaymentWebhookReceipt
from orders.services import order_reserve
from tests.factories import make_order, make_product
from tests.payments import payment_request

pytestmark = pytest.mark.django_db

URL = "/api/v1/payments/webhook/"


def deliver(body: bytes, headers: dict[str, str]):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return APIClient().post(URL, body, content_type="application/json", **extra)  # type: ignore[arg-type]


@pytest.fixture
def reserved_order():
    order = make_order(lines=[(make_product(price="12.50", stock=10), 2)])
    order_reserve(order_id=order.pk)
    return Order.objects.get(pk=order.pk)


def succeeded(order, **overrides):
    return {"type": "payment.succeeded", "order_id": order.pk, "amount": "25.00", "currency": "USD", **overrides}


def test_a_verified_payment_marks_the_reserved_order_paid(reserved_order):
    response = deliver(*payment_request(succeeded(reserved_order)))

    assert response.status_code == 200
    assert response.json() == {"result": "applied"}
    order = Order.objects.get(pk=reserved_order.pk)
    assert order.status == "paid"
    assert order.paid_at is not None
    assert OrderEvent.objects.filter(order=order).last().actor == "payment_provider"


def test_a_bad_signature_is_401_and_changes_nothing(reserved_order):
    body, headers = payment_request(succeeded(reserved_order), secret="whsec_d3JvbmctLXNlY3JldA==")

    response = deliver(body, headers)

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "invalid_signature"
    assert Order.objects.get(pk=reserved_order.pk).status == "reserved"
    assert not PaymentWebhookReceipt.objects.exists()


def test_a_tampered_body_is_401(reserved_order):
    body, headers = payment_request(succeeded(reserved_order))

    response = deliver(body.replace(b"25.00", b"0.01"), headers)

    assert response.status_code == 401


@pytest.mark.parametrize(
    "headers_change",
    [
        {"webhook-signature": "garbage"},
        {"webhook-signature": "v1,not-base64!!"},
        {"webhook-timestamp": "yesterday"},
        {"webhook-id": ""},
    ],
)
def test_malformed_signature_headers_are_401(reserved_order, headers_change):
    body, headers = payment_request(succeeded(reserved_order))

    response = deliver(body, {**headers, **headers_change})

    assert response.status_code == 401


def test_a_stale_callback_is_401(reserved_order):
    response = deliver(*payment_request(succeeded(reserved_order), timestamp=int(time.time()) - 301))

    assert response.status_code == 401
    assert Order.objects.get(pk=reserved_order.pk).status == "reserved"


def test_a_replayed_webhook_id_is_acknowledged_without_effect(reserved_order):
    body, headers = payment_request(succeeded(reserved_order), msg_id="msg_once")
    deliver(body, headers)
    events = OrderEvent.objects.count()

    response = deliver(body, headers)

    assert response.status_code == 200
    assert response.json() == {"result": "duplicate"}
    assert OrderEvent.objects.count() == events
    assert PaymentWebhookReceipt.objects.count() == 1


@pytest.mark.parametrize("change", [{"amount": "24.99"}, {"currency": "EUR"}])
def test_a_mismatched_payment_is_recorded_for_staff_and_not_applied(reserved_order, change):
    response = deliver(*payment_request(succeeded(reserved_order, **change)))

    assert response.status_code == 200
    assert response.json() == {"result": "not_applied"}
    assert Order.objects.get(pk=reserved_order.pk).status == "reserved"
    event = OrderEvent.objects.filter(order=reserved_order).last()
    assert event.kind == "payment_not_applied"
    assert "refund" in event.reason


def test_a_payment_after_cancellation_is_recorded_and_does_not_resurrect_the_order(reserved_order):
    from orders.models import Actor
    from orders.services import order_cancel

    order_cancel(order_id=reserved_order.pk, actor=Actor.STAFF, actor_user=None)

    response = deliver(*payment_request(succeeded(reserved_order)))

    assert response.json() == {"result": "not_applied"}
    assert Order.objects.get(pk=reserved_order.pk).status == "cancelled"
    event = OrderEvent.objects.filter(order=reserved_order).last()
    assert (event.kind, event.data["amount"]) == ("payment_not_applied", "25.00")
    assert "cancelled" in event.reason


def test_a_failed_payment_is_recorded_and_the_order_stays_reserved(reserved_order):
    response = deliver(*payment_request(succeeded(reserved_order, type="payment.failed")))

    assert response.json() == {"result": "failed_payment"}
    assert Order.objects.get(pk=reserved_order.pk).status == "reserved"
    assert OrderEvent.objects.filter(order=reserved_order).last().kind == "payment_failed"


def test_a_payment_for_an_unknown_order_is_kept_for_staff():
    response = deliver(
        *payment_request({"type": "payment.succeeded", "order_id": 999999, "amount": "1.00", "currency": "USD"})
    )

    assert response.json() == {"result": "unknown_order"}
    assert PaymentWebhookReceipt.objects.get().outcome == "unknown_order"


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "payment.refunded", "order_id": 1, "amount": "1.00", "currency": "USD"},
        {"type": "payment.succeeded", "order_id": "1", "amount": "1.00", "currency": "USD"},
        {"type": "payment.succeeded", "order_id": 1, "amount": "lots", "currency": "USD"},
        {"type": "payment.succeeded", "order_id": 1, "amount": "1.00", "currency": "DOLLARS"},
        ["not", "an", "object"],
    ],
)
def test_a_signed_but_malformed_body_is_400(payload):
    response = deliver(*payment_request(payload))

    assert response.status_code == 400
    assert not PaymentWebhookReceipt.objects.exists()
