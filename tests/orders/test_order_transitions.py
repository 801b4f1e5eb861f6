"""Order transitions: ``orders_transition`` (the one way an order changes status), the actions
customers and staff ask for (``POST /orders/{id}/<action>/``), and the reservation's outcome."""

import pytest
from django.db import transaction
from django_fsm import ConcurrentTransition

from inventory.models import Product
from inventory.services import stock_adjust
from notifications.models import NotificationEvent
from orders.models import Actor, Order, OrderEvent
from orders.selectors import stock_claim_discrepancies
from orders.services import InvalidTransition, TransitionNotPermitted, order_reserve, orders_transition
from tests.factories import UserFactory, make_order, make_product

pytestmark = pytest.mark.django_db


def available(product: Product) -> int:
    return Product.objects.get(pk=product.pk).available


def claimed(product: Product) -> int:
    return Product.objects.get(pk=product.pk).claimed


def announcements(order_id: int) -> list[tuple[str, str]]:
    """The order's notification events, oldest first, as (type, status in the payload)."""
    events = NotificationEvent.objects.filter(payload__id=order_id).order_by("created_at", "event_type")
    return [(event.event_type, event.payload["status"]) for event in events]


def locked(*orders: Order) -> list[Order]:
    """The orders read again under their row locks, as the entry points hold them."""
    return list(Order.objects.select_for_update().filter(pk__in=[o.pk for o in orders]).order_by("pk"))


# --- orders_transition ------------------------------------------------------------------------


def test_orders_transition_moves_every_order_records_its_event_and_releases_the_stock():
    # given two reserved orders of one product
    product = make_product(stock=10)
    orders = [make_order(lines=[(product, 2)]) for _ in range(2)]
    for order in orders:
        order_reserve(order_id=order.pk)
    assert available(product) == 6

    # when the system expires both at once
    with transaction.atomic():
        events = orders_transition(orders=locked(*orders), name="expire", actor=Actor.SYSTEM, reason="overdue")

    # then both are expired, each with its event, and their stock is back
    assert [e.to_status for e in events] == ["expired", "expired"]
    assert set(Order.objects.values_list("status", flat=True)) == {"expired"}
    assert [(e.from_status, e.reason) for e in events] == [("reserved", "overdue")] * 2
    assert available(product) == 10
    # and each is announced
    assert [announcements(o.pk)[-1] for o in orders] == [("order.expired", "expired")] * 2


def test_orders_transition_refuses_an_actor_the_state_table_does_not_name_and_changes_nothing():
    # given a reserved order
    order = make_order(lines=[(make_product(), 1)])
    order_reserve(order_id=order.pk)

    # when a customer tries to ship it
    with pytest.raises(TransitionNotPermitted), transaction.atomic():
        orders_transition(orders=locked(order), name="ship", actor=Actor.CUSTOMER)

    # then nothing changed
    assert Order.objects.get(pk=order.pk).status == "reserved"
    assert OrderEvent.objects.filter(order=order).count() == 2


def test_orders_transition_refuses_a_transition_from_the_wrong_status_for_the_whole_batch():
    # given one reserved and one pending order
    product = make_product(stock=10)
    reserved = make_order(lines=[(product, 1)])
    order_reserve(order_id=reserved.pk)
    pending = make_order(lines=[(product, 1)])  # placed after: not in the reservation's batch

    # when both are expired together
    with pytest.raises(InvalidTransition), transaction.atomic():
        orders_transition(orders=locked(reserved, pending), name="expire", actor=Actor.SYSTEM)

    # then neither changed
    assert dict(Order.objects.values_list("pk", "status")) == {reserved.pk: "reserved", pending.pk: "pending"}


def test_orders_transition_is_compare_and_set_even_when_a_caller_forgot_the_lock():
    # given an order read as reserved, then changed behind the reader's back
    order = make_order(lines=[(make_product(), 1)])
    order_reserve(order_id=order.pk)
    stale = Order.objects.get(pk=order.pk)
    Order.objects.filter(pk=order.pk).update(status="cancelled")

    # when the stale copy is expired
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        orders_transition(orders=[stale], name="expire", actor=Actor.SYSTEM)

    # then the change that won stands
    assert Order.objects.get(pk=order.pk).status == "cancelled"


# --- leaving pending: the announcement of the placement and the claims ----------------------


def test_an_order_is_announced_as_placed_when_it_leaves_pending_and_only_then(customer, client_for):
    # given an order placed through the API
    product = make_product(stock=1)
    items = [{"sku": product.sku, "quantity": 1}]
    placed = client_for(customer).post("/api/v1/orders/", {"items": items}, format="json")
    order = Order.objects.get(pk=placed.json()["id"])
    assert announcements(order.pk) == []  # placing writes no notification

    # when it is reserved, and the reservation delivered twice
    assert order_reserve(order_id=order.pk) == "reserved"
    assert order_reserve(order_id=order.pk) == "reserved"  # a redelivery announces nothing twice

    # then it is announced as placed, then as reserved, once each
    assert announcements(order.pk) == [("order.pending", "pending"), ("order.reserved", "reserved")]
    assert NotificationEvent.objects.get(event_type="order.pending").created_at == order.created_at


def test_an_order_cancelled_or_rejected_while_pending_is_announced_as_placed_first(customer, client_for):
    # given two pending orders, and their stock then written off
    product = make_product(stock=2)
    cancelled = make_order(customer=customer, lines=[(product, 1)])
    rejected = make_order(customer=customer, lines=[(product, 1)])
    stock_adjust(product=product, delta=-2, reason="damaged")

    # when one is cancelled and the other's reservation fails
    assert client_for(customer).post(f"/api/v1/orders/{cancelled.pk}/cancel/").status_code == 200
    assert order_reserve(order_id=rejected.pk) == "rejected"

    # then each is announced as placed before its outcome
    assert announcements(cancelled.pk) == [("order.pending", "pending"), ("order.cancelled", "cancelled")]
    assert announcements(rejected.pk) == [("order.pending", "pending"), ("order.rejected", "rejected")]


def test_an_order_leaving_pending_gives_back_its_claims_whether_reserved_or_rejected(customer):
    # given two pending orders, the second of which the stock will no longer serve
    plenty = make_product(sku="PLENTY", stock=10)
    scarce = make_product(sku="SCARCE", stock=3)
    served = make_order(customer=customer, lines=[(plenty, 2), (scarce, 1)])
    refused = make_order(customer=customer, lines=[(plenty, 1), (scarce, 2)])
    assert (claimed(plenty), claimed(scarce)) == (3, 3)
    stock_adjust(product=scarce, delta=-1, reason="damaged")

    # when both are worked on, the first twice
    assert order_reserve(order_id=served.pk) == "reserved"
    assert order_reserve(order_id=refused.pk) == "rejected"
    assert order_reserve(order_id=served.pk) == "reserved"  # a redelivery gives back nothing twice

    # then nothing is claimed any more, and the claims agree with the pending orders
    assert (claimed(plenty), claimed(scarce)) == (0, 0)
    assert stock_claim_discrepancies() == []


def test_an_order_that_cannot_be_reserved_is_rejected_with_the_reason_per_line(customer):
    # given an order whose second line's stock is then written down
    scarce = make_product(sku="SCARCE", stock=2)
    plenty = make_product(sku="PLENTY", stock=10)
    order = make_order(customer=customer, lines=[(plenty, 2), (scarce, 2)])
    stock_adjust(product=scarce, delta=-1, reason="damaged after the order was placed")

    # when its reservation runs
    assert order_reserve(order_id=order.pk) == "rejected"

    # then it is rejected with the reason of the short line, and no stock is taken
    event = OrderEvent.objects.filter(order=order).last()
    assert event is not None
    assert event.to_status == "rejected"
    assert event.data == {"lines": [{"sku": "SCARCE", "quantity": 2, "reason": "insufficient_stock"}]}
    assert available(plenty) == 10


# --- the actions, through the API -------------------------------------------------------------


def test_owner_cancels_a_reserved_order_and_its_stock_returns(customer, client_for):
    # given a reserved order of 2 units
    product = make_product(stock=5)
    order = make_order(customer=customer, lines=[(product, 2)])
    order_reserve(order_id=order.pk)
    assert available(product) == 3

    # when its owner cancels it
    response = client_for(customer).post(f"/api/v1/orders/{order.pk}/cancel/")

    # then it is cancelled, its stock is back and its history says who did what
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert available(product) == 5
    events = client_for(customer).get(f"/api/v1/orders/{order.pk}/events/").json()["results"]
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in events] == [
        ("", "pending", "customer"),
        ("pending", "reserved", "system"),
        ("reserved", "cancelled", "customer"),
    ]


def test_a_customer_cannot_pay_ship_complete_or_refund(customer, client_for):
    # given a reserved order
    order = make_order(customer=customer, lines=[(make_product(), 1)])
    order_reserve(order_id=order.pk)

    # when its owner tries the staff's actions, then each is forbidden and nothing changes
    for action in ("pay", "ship", "complete", "refund"):
        response = client_for(customer).post(f"/api/v1/orders/{order.pk}/{action}/")
        assert response.status_code == 403, action
        assert response.json()["errors"][0]["code"] == "transition_not_permitted"
    assert Order.objects.get(pk=order.pk).status == "reserved"


def test_staff_take_an_order_through_payment_shipping_and_completion(staff, client_for):
    # given a reserved order
    product = make_product(stock=5)
    order = make_order(lines=[(product, 1)])
    order_reserve(order_id=order.pk)
    client = client_for(staff)

    # when staff mark it paid, ship it and complete it
    statuses = [client.post(f"/api/v1/orders/{order.pk}/{a}/").json()["status"] for a in ("pay", "ship", "complete")]

    # then it went through each, and its stock stays sold
    assert statuses == ["paid", "shipped", "completed"]
    assert Order.objects.get(pk=order.pk).paid_at is not None
    assert available(product) == 4


def test_refund_returns_the_stock(staff, client_for):
    # given a paid order of 3 units
    product = make_product(stock=5)
    order = make_order(lines=[(product, 3)])
    order_reserve(order_id=order.pk)
    client = client_for(staff)
    client.post(f"/api/v1/orders/{order.pk}/pay/")

    # when staff refund it
    response = client.post(f"/api/v1/orders/{order.pk}/refund/")

    # then its stock is back
    assert response.json()["status"] == "refunded"
    assert available(product) == 5


@pytest.mark.parametrize("action", ["ship", "complete", "refund", "pay"])
def test_a_transition_the_state_table_does_not_allow_is_409_and_changes_nothing(staff, client_for, action):
    # given a pending order
    order = make_order(lines=[(make_product(), 1)])

    # when staff ask for an action a pending order cannot take
    response = client_for(staff).post(f"/api/v1/orders/{order.pk}/{action}/")

    # then it is refused and nothing changes
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "invalid_transition"
    assert Order.objects.get(pk=order.pk).status == "pending"
    assert OrderEvent.objects.filter(order=order).count() == 1


def test_a_final_order_cannot_be_cancelled(customer, client_for):
    # given a cancelled order
    order = make_order(customer=customer, lines=[(make_product(stock=5), 1)])
    client_for(customer).post(f"/api/v1/orders/{order.pk}/cancel/")

    # when it is cancelled again, then it is refused
    response = client_for(customer).post(f"/api/v1/orders/{order.pk}/cancel/")

    assert response.status_code == 409


def test_another_customers_order_cannot_be_acted_on(customer, client_for):
    # given someone else's order
    theirs = make_order(customer=UserFactory(), lines=[(make_product(), 1)])

    # when a customer tries to cancel it, then it does not exist for them
    assert client_for(customer).post(f"/api/v1/orders/{theirs.pk}/cancel/").status_code == 404
    assert Order.objects.get(pk=theirs.pk).status == "pending"
