from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from core.models import OutboxMessage
from notifications.models import EmailNotification, WebhookDelivery, WebhookEndpoint
from notifications.services.publishing import EMAIL_NOTIFICATION_TASK, WEBHOOK_DELIVERY_TASK
from tests.admin_pages import admin_action, queries_for
from tests.factories import StaffFactory
from tests.notifications.factories import (
    EmailNotificationFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
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


def attempts(delivery, count, *, status_code=500):
    for number in range(1, count + 1):
        delivery.attempts.create(
            number=number, attempted_at=delivery.created_at, duration_ms=5, status_code=status_code, response_body="no"
        )


@pytest.mark.parametrize(
    "page",
    [
        "/admin/notifications/webhookdelivery/",
        "/admin/notifications/emailnotification/",
        "/admin/notifications/notificationevent/",
        "/admin/notifications/webhookendpoint/",
    ],
)
def test_notification_lists_cost_the_same_queries_for_2_or_20_rows(admin_client, page):
    for _ in range(2):
        WebhookDeliveryFactory.create()
        EmailNotificationFactory.create()
    few = queries_for(admin_client, page)
    for _ in range(18):
        WebhookDeliveryFactory.create()
        EmailNotificationFactory.create()

    assert queries_for(admin_client, page) == few


def test_a_delivery_page_costs_the_same_queries_for_1_or_8_attempts_and_shows_responses(admin_client):
    one, eight = WebhookDeliveryFactory.create(), WebhookDeliveryFactory.create()
    attempts(one, 1)
    attempts(eight, 8, status_code=503)
    queries_for(admin_client, f"/admin/notifications/webhookdelivery/{one.pk}/change/")  # warm per-process caches

    assert queries_for(admin_client, f"/admin/notifications/webhookdelivery/{eight.pk}/change/") == queries_for(
        admin_client, f"/admin/notifications/webhookdelivery/{one.pk}/change/"
    )
    html = admin_client.get(f"/admin/notifications/webhookdelivery/{eight.pk}/change/").content.decode()
    assert html.count("503") >= 8


def test_resend_queues_undelivered_deliveries_and_reports_the_others(admin_client):
    dead = WebhookDeliveryFactory.create(status=WebhookDelivery.Status.DEAD_LETTERED, attempt_count=3)
    delivered = WebhookDeliveryFactory.create(status=WebhookDelivery.Status.SUCCEEDED)
    switched_off = WebhookDeliveryFactory.create(
        status=WebhookDelivery.Status.FAILED, endpoint=WebhookEndpointFactory.create(active=False)
    )

    selected = [dead.pk, delivered.pk, switched_off.pk]
    texts = admin_action(admin_client, "/admin/notifications/webhookdelivery/", "resend_deliveries", selected)
    assert f"Resend queued for delivery(ies) {dead.pk}." in texts
    assert f"Not resent, already delivered: delivery(ies) {delivered.pk}." in texts
    assert f"Not resent, its endpoint is deactivated: delivery(ies) {switched_off.pk}." in texts
    dead.refresh_from_db()
    assert dead.status == WebhookDelivery.Status.PENDING
    queued = OutboxMessage.objects.get(task_name=WEBHOOK_DELIVERY_TASK)
    assert queued.args == [dead.pk]


def test_resend_queues_an_unsent_email_but_not_a_sent_one(admin_client):
    failed = EmailNotificationFactory.create(status=EmailNotification.Status.DEAD_LETTERED)
    sent = EmailNotificationFactory.create(status=EmailNotification.Status.SENT)

    texts = admin_action(admin_client, "/admin/notifications/emailnotification/", "resend_emails", [failed.pk, sent.pk])
    assert f"Resend queued for e-mail(s) {failed.pk}." in texts
    assert f"Not resent, already sent: e-mail(s) {sent.pk}." in texts
    assert list(OutboxMessage.objects.filter(task_name=EMAIL_NOTIFICATION_TASK).values_list("args", flat=True)) == [
        [failed.pk]
    ]


def test_staff_who_may_only_view_deliveries_cannot_resend(client):
    viewer = StaffFactory.create()
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client.force_login(viewer)
    dead = WebhookDeliveryFactory.create(status=WebhookDelivery.Status.DEAD_LETTERED)

    listing = client.get("/admin/notifications/webhookdelivery/")
    client.post("/admin/notifications/webhookdelivery/", {"action": "resend_deliveries", "_selected_action": [dead.pk]})

    assert listing.status_code == 200
    assert b"resend_deliveries" not in listing.content
    assert not OutboxMessage.objects.exists()
    dead.refresh_from_db()
    assert dead.status == WebhookDelivery.Status.DEAD_LETTERED


@pytest.mark.parametrize("page", ["/admin/notifications/webhookdelivery/", "/admin/notifications/notificationevent/"])
def test_notifications_are_found_by_event_id_and_other_terms_do_not_break_the_search(admin_client, page):
    delivery = WebhookDeliveryFactory.create()
    WebhookDeliveryFactory.create()

    found = admin_client.get(page, {"q": str(delivery.event_id)})
    other = admin_client.get(page, {"q": "merchant"})

    assert len(found.context["cl"].result_list) == 1
    assert other.status_code == 200
