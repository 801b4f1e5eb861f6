"""The order desk: read-only orders and timelines, and actions that go through the services."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin_tools import EstimatedCountPaginator
from core.errors import DomainError
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


def _run_action(modeladmin: OrderAdmin, request: HttpRequest, orders: QuerySet[Order], name: str) -> None:
    """Apply action ``name`` to each selected order through its service, reporting per order."""
    act = ORDER_ACTIONS[name]
    outcomes: dict[str, list[str]] = defaultdict(list)
    for order_id in orders.order_by("pk").values_list("pk", flat=True):
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
    return admin.action(description=description, permissions=["change"])(action)


TRANSITION_ACTIONS = [
    _transition_action("cancel", "Cancel selected orders"),
    _transition_action("pay", "Mark selected orders paid (manual payment)"),
    _transition_action("ship", "Ship selected orders"),
    _transition_action("complete", "Complete selected orders"),
    _transition_action("refund", "Refund selected orders"),
]


@admin.action(description="Retry reservation of selected pending orders", permissions=["change"])
def retry_reservation(modeladmin: OrderAdmin, request: HttpRequest, queryset: QuerySet[Order]) -> None:
    retried: list[str] = []
    skipped: list[str] = []
    for order_id in queryset.order_by("pk").values_list("pk", flat=True):
        (retried if order_reservation_retry(order_id=order_id) else skipped).append(str(order_id))
    if retried:
        modeladmin.message_user(request, f"Reservation queued again for order(s) {', '.join(retried)}.")
    if skipped:
        modeladmin.message_user(request, f"Not pending, skipped: {', '.join(skipped)}.", messages.WARNING)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "email", "total", "currency", "created_at", "expires_at"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=id", "email", "=lines__sku"]
    ordering = ["-created_at", "-pk"]
    inlines = [OrderLineInline, OrderEventInline]
    actions = [*TRANSITION_ACTIONS, retry_reservation]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    fields = readonly_fields = (
        "id", "status", "customer", "email", "total", "currency",
        "created_at", "updated_at", "reserved_at", "expires_at", "paid_at",
    )  # fmt: skip

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        term = search_term.strip()
        if term.isdigit():  # an order number
            return queryset.filter(pk=int(term)), False
        # e-mail or SKU; SKU matches join the lines, so duplicates are possible
        return super().get_search_results(request, queryset.all(), term)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).select_related("customer")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come in through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PaymentWebhookReceipt)
class PaymentWebhookReceiptAdmin(admin.ModelAdmin):
    list_display = ["received_at", "webhook_id", "event_type", "order", "amount", "currency", "outcome"]
    list_filter = ["outcome", "event_type"]
    search_fields = ["=webhook_id", "=order__id"]
    readonly_fields = [f.name for f in PaymentWebhookReceipt._meta.fields]
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
