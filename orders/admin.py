"""The order desk: read-only orders and timelines, and actions that go through the services."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin_tools import MAX_ID, BoundedCountAdmin
from core.audit import audit_record
from core.errors import DomainError
from core.permissions import staff_may
from inventory.selectors import products_by_sku
from orders.models import Actor, Order, OrderEvent, OrderLine, PaymentWebhookReceipt
from orders.services import ORDER_ACTIONS, order_reservation_retry


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = readonly_fields = ("sku", "name", "quantity", "unit_price", "line_total")


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    verbose_name_plural = "timeline"
    fields = readonly_fields = (
        "created_at",
        "kind",
        "from_status",
        "to_status",
        "actor",
        "actor_user",
        "reason",
        "data",
    )
    ordering = ["created_at", "pk"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        return super().get_queryset(request).select_related("actor_user")


# Orders a search by SKU lists: the newest, as staff look for recent ones; older ones are found
# by e-mail address or order number.
SKU_SEARCH_LIMIT = 1000
# Orders one action may change: each is a transaction of its own within one request, and
# "select all" in a list of millions must not become millions of them.
MAX_ORDERS_PER_ACTION = 200


def _selected_ids(modeladmin: OrderAdmin, request: HttpRequest, orders: QuerySet[Order]) -> list[int] | None:
    """The selected orders' ids, or None (and a message) when there are more than one action may change."""
    ids = list(orders.order_by("pk").values_list("pk", flat=True)[: MAX_ORDERS_PER_ACTION + 1])
    if len(ids) > MAX_ORDERS_PER_ACTION:
        modeladmin.message_user(
            request,
            f"Nothing was done: at most {MAX_ORDERS_PER_ACTION} orders at a time. Narrow the list with its filters.",
            messages.ERROR,
        )
        return None
    return ids


def _run_action(modeladmin: OrderAdmin, request: HttpRequest, orders: QuerySet[Order], name: str) -> None:
    """Apply action ``name`` to each selected order through its service, reporting per order."""
    act = ORDER_ACTIONS[name]
    outcomes: dict[str, list[str]] = defaultdict(list)
    for order_id in _selected_ids(modeladmin, request, orders) or []:
        try:
            act(order_id=order_id, actor=Actor.STAFF, actor_user=request.user)
        except DomainError as exc:
            outcomes[exc.message].append(str(order_id))
        else:
            outcomes["done"].append(str(order_id))
    for outcome, ids in outcomes.items():
        if outcome == "done":
            modeladmin.message_user(request, f"{name}: order(s) {', '.join(ids)} done.", messages.SUCCESS)
        else:
            modeladmin.message_user(
                request, f"{name} refused for order(s) {', '.join(ids)}: {outcome}", messages.WARNING
            )


def _transition_action(name: str, description: str) -> Callable[..., None]:
    """An admin action applying the order action ``name`` (``ORDER_ACTIONS``) to the selected orders."""

    def action(modeladmin: OrderAdmin, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        _run_action(modeladmin, request, queryset, name)

    action.__name__ = f"{name}_orders"
    return admin.action(description=description, permissions=["order_action"])(action)


TRANSITION_ACTIONS = [
    _transition_action("cancel", "Cancel selected orders"),
    _transition_action("pay", "Mark selected orders paid (manual payment)"),
    _transition_action("ship", "Ship selected orders"),
    _transition_action("complete", "Complete selected orders"),
    _transition_action("refund", "Refund selected orders"),
]


@admin.action(description="Retry reservation of selected pending orders", permissions=["retry_reservation"])
def retry_reservation(modeladmin: OrderAdmin, request: HttpRequest, queryset: QuerySet[Order]) -> None:
    retried: list[str] = []
    skipped: list[str] = []
    for order_id in _selected_ids(modeladmin, request, queryset) or []:
        (retried if order_reservation_retry(order_id=order_id) else skipped).append(str(order_id))
    if retried:
        audit_record(
            actor=request.user,
            action="order.retry_reservation",
            target_type="order",
            target_id=",".join(retried),
        )
    if retried:
        modeladmin.message_user(request, f"Reservation queued again for order(s) {', '.join(retried)}.")
    if skipped:
        modeladmin.message_user(request, f"Not pending, skipped: {', '.join(skipped)}.", messages.WARNING)


@admin.register(Order)
class OrderAdmin(BoundedCountAdmin):
    # The actions' permissions, from the map the API reads too (core/permissions.py).
    def has_order_action_permission(self, request: HttpRequest) -> bool:
        return staff_may(request.user, "order.act")

    def has_retry_reservation_permission(self, request: HttpRequest) -> bool:
        return staff_may(request.user, "order.retry_reservation")

    list_display = ["id", "status", "email", "total", "currency", "created_at", "expires_at"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    # Each kind of search term is answered from an index (get_search_results); Django's own
    # search would OR a substring match of every field over a join, which reads the whole table.
    search_fields = ["=id", "=email", "=lines__sku"]
    search_help_text = (
        f"An order number, an e-mail address (in any case), or a SKU (its newest {SKU_SEARCH_LIMIT:,} orders)."
    )
    ordering = ["-created_at", "-pk"]
    # Creation time is the one column every filter's index is ordered by; sorting by another
    # would sort every matching order to show fifty.
    sortable_by = ["created_at"]
    inlines = [OrderLineInline, OrderEventInline]
    actions = [*TRANSITION_ACTIONS, retry_reservation]
    list_per_page = 50
    fields = readonly_fields = (
        "id", "status", "customer", "email", "total", "currency",
        "created_at", "updated_at", "reserved_at", "expires_at", "paid_at",
    )  # fmt: skip

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isascii() and term.isdigit():  # an order number
            return (queryset.filter(pk=int(term)) if int(term) <= MAX_ID else queryset.none()), False
        if "@" in term:  # the (upper(email), created_at, id) index
            return queryset.filter(email__iexact=term), False
        # A SKU: the newest orders with a line of that product, read from the (product, order)
        # index of the lines, a bounded number of them so that a popular product costs no more.
        # Their ids are handed over as a list, which the planner reads by primary key (given a
        # subquery instead, it planned a hash join over every order).
        product = products_by_sku(skus=[term]).get(term)
        if product is None:
            return queryset.none(), False
        newest = OrderLine.objects.filter(product=product).order_by("-order_id").values_list("order_id", flat=True)
        return queryset.filter(pk__in=list(newest[:SKU_SEARCH_LIMIT])), False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).select_related("customer")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come in through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PaymentWebhookReceipt)
class PaymentWebhookReceiptAdmin(BoundedCountAdmin):
    list_display = ["received_at", "webhook_id", "event_type", "order", "amount", "currency", "outcome"]
    list_filter = ["outcome", "event_type"]
    search_fields = ["=webhook_id", "=order__id"]
    search_help_text = "A webhook-id or an order number."
    sortable_by = ["received_at"]
    ordering = ["-received_at", "-pk"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[PaymentWebhookReceipt], search_term: str
    ) -> tuple[QuerySet[PaymentWebhookReceipt], bool]:
        # Exact matches, through the webhook-id's unique index and the order's foreign key index
        # (Django's "=" search compares upper-cased text, which no index serves).
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = queryset.filter(webhook_id=term)
        if term.isascii() and term.isdigit() and int(term) <= MAX_ID:
            matches = matches | queryset.filter(order_id=int(term))
        return matches, False

    readonly_fields = [f.name for f in PaymentWebhookReceipt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
