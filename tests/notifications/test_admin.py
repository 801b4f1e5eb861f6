from __future__ import annotations

import pytest

from notifications.models import WebhookEndpoint
from tests.notifications.factories import (
    EmailNotificationFactory,
    StaffFactory,
    WebhookDeliveryFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(StaffFactory.create(is_superuser=True))
    return client


@pytest.mark.parametrize(
    "page",
    [
        "/admin/notifications/webhookendpoint/",
        "/admin/notifications/webhookdelivery/",
        "/admin/notifications/emailnotification/",
        "/admin/notifications/notificationevent/",
        "/admin/core/taskfailure/",
    ],
)
def test_staff_see_the_notification_pages(admin_client, page):
    delivery = WebhookDeliveryFactory.create()
    delivery.attempts.create(number=1, attempted_at=delivery.created_at, duration_ms=5, status_code=500)
    EmailNotificationFactory.create()

    assert admin_client.get(page).status_code == 200
    assert admin_client.get(f"/admin/notifications/webhookdelivery/{delivery.pk}/change/").status_code == 200


def test_an_endpoint_added_in_the_admin_gets_a_secret_shown_once(admin_client):
    response = admin_client.post(
        "/admin/notifications/webhookendpoint/add/",
        {"url": "https://shop.example.com/hooks", "events": ["order.paid"], "active": "on"},
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
    assert (
        endpoint.secret
        not in admin_client.get(f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/").content.decode()
    )
