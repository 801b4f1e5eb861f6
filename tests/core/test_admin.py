"""The plumbing in the admin: the outbox backlog, the operations dashboard, dead letters."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client
from django.utils import timezone

from config import queues
from config.celery_app import app
from core.dead_letters import dead_letter_list
from core.models import OutboxMessage
from core.outbox import outbox_enqueue
from orders.activity import activity_rollup
from orders.models import ActivityCount
from orders.services import order_reserve
from tests.admin_pages import forget_operations_readings, queries_for
from tests.factories import StaffFactory, make_order, make_product
from tests.faults import free_port
from tests.orders.activity_history import activity_history
from tests.processes import HEARTBEAT_TASK, dead_letter_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


@pytest.fixture
def fresh_readings():
    forget_operations_readings()
    yield
    forget_operations_readings()


@pytest.fixture
def broker_down(monkeypatch, fresh_readings):
    """RabbitMQ unreachable: the broker URL points at a port nothing listens on."""
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    # In this order: Celery's ``broker_url`` reads the environment first, so setting the
    # variable first would make the value restored after the test the closed one.
    monkeypatch.setattr(app.conf, "broker_url", closed)
    monkeypatch.setenv("CELERY_BROKER_URL", closed)


def staff_with(*codenames):
    user = StaffFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def outbox_rows(count: int, *, published: bool, age: timedelta = timedelta(0)) -> None:
    with transaction.atomic():
        for n in range(count):
            outbox_enqueue(task_name=HEARTBEAT_TASK, args=[str(uuid.uuid4())], kwargs={"n": n})
    OutboxMessage.objects.update(created_at=timezone.now() - age, published_at=timezone.now() if published else None)


# --- outbox -----------------------------------------------------------------------------


def test_the_outbox_list_shows_unpublished_rows_and_their_age_by_default(admin_client_):
    outbox_rows(2, published=False, age=timedelta(minutes=7))
    published = OutboxMessage.objects.create(task_name="published.task", published_at=timezone.now())

    response = admin_client_.get("/admin/core/outboxmessage/")

    shown = {m.pk for m in response.context["cl"].result_list}
    html = response.content.decode()
    assert shown == set(OutboxMessage.objects.filter(published_at__isnull=True).values_list("pk", flat=True))
    assert published.pk not in shown
    assert "7 min" in html
    assert "Unpublished: <strong>2</strong>" in html
    assert admin_client_.get("/admin/core/outboxmessage/?state=published").context["cl"].result_list[0] == published


def test_the_outbox_list_costs_the_same_queries_for_3_or_30_rows(admin_client_, fresh_readings):
    outbox_rows(3, published=False)
    few = queries_for(admin_client_, "/admin/core/outboxmessage/")
    outbox_rows(27, published=False)
    forget_operations_readings()

    assert queries_for(admin_client_, "/admin/core/outboxmessage/") == few


def test_the_outbox_row_page_is_read_only(admin_client_):
    outbox_rows(1, published=False)
    row = OutboxMessage.objects.get()

    html = admin_client_.get(f"/admin/core/outboxmessage/{row.pk}/change/").content.decode()

    assert HEARTBEAT_TASK in html
    assert 'name="task_name"' not in html


# --- dashboard --------------------------------------------------------------------------


def test_the_dashboard_shows_orders_per_status_queues_and_lags(admin_client_, fresh_readings):
    product = make_product(stock=10)
    reserved = make_order(lines=[(product, 1)])
    order_reserve(order_id=reserved.pk)
    make_order(lines=[(product, 1)])  # still pending
    outbox_rows(0, published=False)

    response = admin_client_.get("/admin/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="operations-dashboard"' in html
    assert '<a href="/admin/orders/order/?status__exact=pending">pending</a></th><td>1</td>' in html
    assert '<a href="/admin/orders/order/?status__exact=reserved">reserved</a></th><td>1</td>' in html
    assert '<td id="orders-last-hour">2</td>' in html
    assert '<td id="oldest-pending">' in html and "none pending" not in html
    for name in queues.WORK_QUEUE_NAMES:
        assert f'<th scope="row">{name}</th><td>' in html
        assert f"{name}.dlq</a>" in html
    assert "RabbitMQ unavailable" not in html
    # the order placements left their tasks in the outbox (this test publishes nothing)
    assert '<td id="outbox-unpublished">0</td>' not in html


def test_the_dashboard_says_unavailable_when_rabbitmq_is_down(admin_client_, broker_down):
    make_order(lines=[(make_product(), 1)])

    response = admin_client_.get("/admin/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="broker-unavailable"' in html
    assert html.count("<td>unavailable</td>") == 2 * len(queues.WORK_QUEUE_NAMES)
    assert '<td id="orders-last-hour">1</td>' in html  # PostgreSQL readings still shown


def test_the_dashboard_costs_the_same_queries_for_few_or_many_orders(admin_client_, fresh_readings):
    product = make_product(stock=100)
    make_order(lines=[(product, 1)])
    few = queries_for(admin_client_, "/admin/")
    for _ in range(20):
        make_order(lines=[(product, 1)])
    forget_operations_readings()

    assert queries_for(admin_client_, "/admin/") == few


def test_the_dashboard_draws_the_last_hour_and_day_of_activity_as_inline_svg(admin_client_, fresh_readings):
    # given activity counted by the rollup: orders placed 20 minutes and 5 hours ago, one
    # reservation, a dead letter (20 minutes ago lies in a whole fifteen minutes of the day chart
    # whatever the time: its last bucket ends less than 15 minutes before now)
    now = timezone.now()
    twenty_ago, hours_ago = now - timedelta(minutes=20), now - timedelta(hours=5)
    activity_history(
        customer=StaffFactory(),
        placed={twenty_ago: 4, hours_ago: 2},
        reserved={twenty_ago: 1},
        failed={twenty_ago: 1},
    )
    activity_rollup(now=now)

    html = admin_client_.get("/admin/").content.decode()

    # then every series has a chart of the last hour and one of the last day, drawn on the server
    for series in ActivityCount.Series.values:
        assert f'id="chart-hour-{series}"' in html and f'id="chart-day-{series}"' in html
    assert html.count('<svg class="activity-svg"') == 2 * len(ActivityCount.Series.values)
    assert f"<title>{twenty_ago:%H:%M}: 4</title>" in html  # the bar of that minute
    hour_placed = html.split('id="chart-hour-placed"')[1].split("</figure>")[0]
    assert "4 in all" in hour_placed
    day_placed = html.split('id="chart-day-placed"')[1].split("</figure>")[0]
    assert "6 in all" in day_placed
    assert "<script" not in html.split('id="activity-charts"')[1]


def test_staff_who_may_not_see_orders_get_no_dashboard(client):
    client.force_login(staff_with("view_product"))

    html = client.get("/admin/").content.decode()

    assert "operations-dashboard" not in html


# --- dead letters -----------------------------------------------------------------------


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.flow
def test_dead_letters_are_listed_replayed_and_purged_with_a_result_per_message(
    admin_client_, dead_letter_queues_empty, fresh_readings
):
    # given two dead letters in orders.dlq and one in inventory.dlq
    replayed, purged = dead_letter_to(queues.ORDERS), dead_letter_to(queues.ORDERS)
    kept = dead_letter_to(queues.INVENTORY)

    listing = admin_client_.get("/admin/core/deadletter/")
    orders_only = admin_client_.get("/admin/core/deadletter/?queue=orders")

    html = listing.content.decode()
    assert listing.status_code == 200
    assert all(letter_id in html for letter_id in (replayed, purged, kept))
    assert HEARTBEAT_TASK in html
    assert kept not in orders_only.content.decode()

    # when one is replayed and one purged (after confirming), and a vanished one is asked for
    replay = admin_client_.post(
        "/admin/core/deadletter/", {"action": "replay", "ids": [replayed, "gone-1"]}, follow=True
    )
    confirm = admin_client_.post("/admin/core/deadletter/", {"action": "purge", "ids": [purged]})
    purge = admin_client_.post(
        "/admin/core/deadletter/", {"action": "purge", "ids": [purged], "confirmed": "yes"}, follow=True
    )

    # then each message says what happened, and only the untouched letter is left
    assert f"{replayed} ({HEARTBEAT_TASK}): replayed to orders." in messages_of(replay)
    assert "gone-1: not found (already replayed or purged?)." in messages_of(replay)
    assert confirm.status_code == 200 and b"Yes, purge them" in confirm.content
    assert f"{purged} ({HEARTBEAT_TASK}): purged." in messages_of(purge)
    assert [letter.id for letter in dead_letter_list()] == [kept]


@pytest.mark.flow
def test_the_dead_letter_page_shows_the_oldest_few_and_says_how_many_more_there_are(
    admin_client_, dead_letter_queues_empty, fresh_readings, monkeypatch
):
    # given three dead letters and a page that shows two
    monkeypatch.setattr("core.dead_letters.LIST_LIMIT", 2)
    letters = [dead_letter_to(queues.ORDERS) for _ in range(3)]

    page = admin_client_.get("/admin/core/deadletter/").content.decode()

    # then the two oldest are listed, and the page says one more is not shown
    assert letters[0] in page and letters[1] in page and letters[2] not in page
    assert 'id="more-dead-letters"' in page
    assert "Showing the oldest 2 of 3 dead letters: 1 more are not shown." in page
    assert len(dead_letter_list()) == 3


@pytest.mark.flow
def test_staff_who_may_only_view_dead_letters_cannot_replay_or_purge(client, dead_letter_queues_empty, fresh_readings):
    letter = dead_letter_to(queues.WEBHOOKS)
    client.force_login(staff_with("view_deadletter"))

    page = client.get("/admin/core/deadletter/")
    replay = client.post("/admin/core/deadletter/", {"action": "replay", "ids": [letter]})
    purge = client.post("/admin/core/deadletter/", {"action": "purge", "ids": [letter], "confirmed": "yes"})

    assert page.status_code == 200
    assert letter in page.content.decode()
    assert b'value="replay"' not in page.content
    assert (replay.status_code, purge.status_code) == (403, 403)
    assert [d.id for d in dead_letter_list()] == [letter]


def test_staff_without_the_view_permission_do_not_see_dead_letters(client):
    client.force_login(staff_with("view_order"))

    assert client.get("/admin/core/deadletter/").status_code == 403


def test_dead_letter_posts_need_the_csrf_token():
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(StaffFactory(is_superuser=True))

    response = strict.post("/admin/core/deadletter/", {"action": "purge", "ids": ["x"], "confirmed": "yes"})

    assert response.status_code == 403


def test_the_dead_letter_page_says_unavailable_when_rabbitmq_is_down(admin_client_, broker_down):
    response = admin_client_.get("/admin/core/deadletter/")

    assert response.status_code == 200
    assert b'id="dead-letters-unavailable"' in response.content


def test_the_admin_is_branded_as_the_order_service(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Log in | Order service admin</title>" in page
    assert ">Order service</a>" in page
    assert "Django administration" not in page
