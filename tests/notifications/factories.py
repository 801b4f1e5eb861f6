from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import factory

from notifications.models import (
    EmailNotification,
    EventType,
    NotificationEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from notifications.signing import webhook_secret_generate


def order_payload(**overrides: Any) -> dict[str, Any]:
    """An order as the API shows it (JSON-ready), reserved until 2030-01-02 03:04 UTC."""
    payload: dict[str, Any] = {
        "id": 42,
        "status": "reserved",
        "email": "customer@example.com",
        "items": [
            {"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": "12.50", "line_total": "25.00"},
            {"sku": "TEA-7", "name": "Green tea", "quantity": 1, "unit_price": "4.00", "line_total": "4.00"},
        ],
        "total": "29.00",
        "currency": "USD",
        "created_at": "2030-01-02T02:30:00Z",
        "updated_at": "2030-01-02T02:34:00Z",
        "reserved_at": "2030-01-02T02:34:00Z",
        "expires_at": "2030-01-02T03:04:00Z",
        "paid_at": None,
    }
    payload.update(overrides)
    return payload


class WebhookEndpointFactory(factory.django.DjangoModelFactory[WebhookEndpoint]):
    class Meta:
        model = WebhookEndpoint

    url = factory.Sequence(lambda n: f"https://merchant{n}.example.com/hooks")
    events = factory.LazyFunction(lambda: list(EventType.values))
    active = True
    secret = factory.LazyFunction(webhook_secret_generate)


class NotificationEventFactory(factory.django.DjangoModelFactory[NotificationEvent]):
    class Meta:
        model = NotificationEvent

    event_type = EventType.ORDER_RESERVED
    payload = factory.LazyFunction(order_payload)
    created_at = factory.LazyFunction(lambda: datetime.now(UTC) - timedelta(seconds=1))


class WebhookDeliveryFactory(factory.django.DjangoModelFactory[WebhookDelivery]):
    class Meta:
        model = WebhookDelivery

    event = factory.SubFactory(NotificationEventFactory)
    endpoint = factory.SubFactory(WebhookEndpointFactory)


class EmailNotificationFactory(factory.django.DjangoModelFactory[EmailNotification]):
    class Meta:
        model = EmailNotification

    event = factory.SubFactory(NotificationEventFactory)
    recipient = "customer@example.com"
