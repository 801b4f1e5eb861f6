"""Orders, their lines and their history.

The state table of the contract lives here, in the ``@transition`` methods of :class:`Order`:
each names its source and target states and, in ``custom["actors"]``, who may trigger it. The
status field is protected, so a transition method is the only way to change it, and
orders.services.transitions.orders_transition the only caller of those methods.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from inventory.models import SKU_MAX_LENGTH


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    RESERVED = "reserved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    PAID = "paid"
    EXPIRED = "expired"
    SHIPPED = "shipped"
    REFUNDED = "refunded"
    COMPLETED = "completed"


class Actor(models.TextChoices):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"
    PAYMENT_PROVIDER = "payment_provider"


class Order(ConcurrentTransitionMixin, models.Model):
    # No index of its own: the (customer, created_at, id) index below serves every lookup by customer.
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    email = models.EmailField()
    status = FSMField(default=OrderStatus.PENDING, choices=OrderStatus.choices, protected=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    reserved_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Every list of orders is newest first (created_at, then id) and read a page at a time
        # from a cursor (core/pagination.py). Each filter the API and the admin offer, alone or
        # with a status, has an index that starts with its equality columns and goes on in that
        # order, so a page is read straight off one index however many orders came before it,
        # and however many a single customer or address has: nothing is sorted, no row is read
        # and thrown away (invariant 11; tests/test_query_plans.py).
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="order_recent_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="order_status_recent_idx"),
            models.Index(fields=["customer", "-created_at", "-id"], name="order_customer_recent_idx"),
            models.Index(fields=["customer", "status", "-created_at", "-id"], name="order_customer_status_idx"),
            # Staff find orders by e-mail address, in any case (``email__iexact``).
            models.Index(Upper("email"), F("created_at").desc(), F("id").desc(), name="order_email_recent_idx"),
            models.Index(
                Upper("email"), F("status"), F("created_at").desc(), F("id").desc(), name="order_email_status_idx"
            ),
            # The expiry sweeper looks only at reserved orders by deadline; a partial index keeps
            # that lookup to the orders due, however many orders the table holds.
            models.Index(fields=["expires_at", "id"], condition=Q(status="reserved"), name="order_reserved_due_idx"),
        ]

    def __str__(self) -> str:
        return f"Order {self.pk} ({self.status})"

    # --- The state table (source, target, allowed actors) -------------------------------------
    @transition(field=status, source=OrderStatus.PENDING, target=OrderStatus.RESERVED,
                custom={"actors": {Actor.SYSTEM}, "sets": ("reserved_at", "expires_at")})  # fmt: skip
    def reserve(self, *, at: datetime) -> None:
        self.reserved_at = at
        self.expires_at = at + timedelta(seconds=settings.ORDER_PAYMENT_TIMEOUT_SECONDS)

    @transition(field=status, source=OrderStatus.PENDING, target=OrderStatus.REJECTED,
                custom={"actors": {Actor.SYSTEM}})  # fmt: skip
    def reject(self, *, at: datetime) -> None:
        pass

    @transition(field=status, source=[OrderStatus.PENDING, OrderStatus.RESERVED], target=OrderStatus.CANCELLED,
                custom={"actors": {Actor.CUSTOMER, Actor.STAFF}})  # fmt: skip
    def cancel(self, *, at: datetime) -> None:
        pass

    @transition(field=status, source=OrderStatus.RESERVED, target=OrderStatus.PAID,
                custom={"actors": {Actor.PAYMENT_PROVIDER, Actor.STAFF}, "sets": ("paid_at",)})  # fmt: skip
    def pay(self, *, at: datetime) -> None:
        self.paid_at = at

    @transition(field=status, source=OrderStatus.RESERVED, target=OrderStatus.EXPIRED,
                custom={"actors": {Actor.SYSTEM}})  # fmt: skip
    def expire(self, *, at: datetime) -> None:
        pass

    @transition(field=status, source=OrderStatus.PAID, target=OrderStatus.SHIPPED,
                custom={"actors": {Actor.STAFF}})  # fmt: skip
    def ship(self, *, at: datetime) -> None:
        pass

    @transition(field=status, source=OrderStatus.PAID, target=OrderStatus.REFUNDED,
                custom={"actors": {Actor.STAFF}})  # fmt: skip
    def refund(self, *, at: datetime) -> None:
        pass

    @transition(field=status, source=OrderStatus.SHIPPED, target=OrderStatus.COMPLETED,
                custom={"actors": {Actor.STAFF}})  # fmt: skip
    def complete(self, *, at: datetime) -> None:
        pass


# The most units one order line may ask for (a constraint of the table, and the API's input shape).
MAX_QUANTITY = 1000


class OrderLine(models.Model):
    """A line of an order, with a snapshot of the product as it was sold."""

    # Neither foreign key has an index of its own: the unique (order, product) constraint serves
    # an order's lines, and (product, order) below the orders of a product.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False)
    product = models.ForeignKey("inventory.Product", on_delete=models.PROTECT, related_name="+", db_index=False)
    sku = models.CharField(max_length=SKU_MAX_LENGTH)
    name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="order_line_unique_product"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1, quantity__lte=MAX_QUANTITY), name="order_line_quantity_range"
            ),
        ]
        # The newest orders of a product first (the admin's search by SKU).
        indexes = [models.Index(fields=["product", "-order"], name="order_line_product_order_idx")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class OrderEvent(models.Model):
    """Something that happened to an order: a transition, or a payment that was not applied."""

    class Kind(models.TextChoices):
        TRANSITION = "transition"
        PAYMENT_NOT_APPLIED = "payment_not_applied"
        PAYMENT_FAILED = "payment_failed"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.TRANSITION)
    from_status = models.CharField(max_length=16, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    actor = models.CharField(max_length=32, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["order", "created_at"], name="order_event_order_created_idx"),
            # The reservations and expiries of a few minutes, for the activity rollup
            # (orders/activity.py). Partial: the intake's "pending" events never enter it.
            models.Index(
                fields=["to_status", "created_at"],
                condition=Q(kind="transition", to_status__in=["reserved", "expired"]),
                name="order_event_activity_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '-'} -> {self.to_status} ({self.kind})"


class PaymentWebhookReceipt(models.Model):
    """Every verified payment callback, once per ``webhook-id`` (replays are acknowledged only)."""

    class Outcome(models.TextChoices):
        APPLIED = "applied"
        NOT_APPLIED = "not_applied"
        FAILED_PAYMENT = "failed_payment"
        UNKNOWN_ORDER = "unknown_order"

    webhook_id = models.CharField(max_length=255, unique=True)
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="payments")
    event_type = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Receipts are pruned by age (orders.services.retention).
        indexes = [models.Index(fields=["received_at"], name="payment_receipt_received_idx")]

    def __str__(self) -> str:
        return f"{self.webhook_id} ({self.outcome})"


class ActivityCount(models.Model):
    """What happened in one minute, for the charts of the admin's operations dashboard.

    A small table (a row per series and minute, kept ``ACTIVITY_RETENTION``): the charts read a
    day of it instead of counting the orders, events and failures behind it (orders/activity.py).
    """

    class Series(models.TextChoices):
        PLACED = "placed", "Orders placed"
        RESERVED = "reserved", "Reserved"
        REFUSED_SOLD_OUT = "refused_sold_out", "Refused: sold out"
        EXPIRED = "expired", "Expired"
        DEAD_LETTERED = "dead_lettered", "Dead-lettered tasks"
        OUTBOX_LAG_SECONDS = "outbox_lag_seconds", "Outbox lag"

    minute = models.DateTimeField()  # the minute's start
    series = models.CharField(max_length=32, choices=Series.choices)
    value = models.BigIntegerField()  # a count, or seconds for the outbox lag

    class Meta:
        constraints = [models.UniqueConstraint(fields=["minute", "series"], name="activity_count_minute_series")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.series}: {self.value}"


def order_lines_cache(order: Order, lines: list[OrderLine]) -> None:
    """Make ``order.lines.all()`` answer ``lines`` without a query, as ``prefetch_related`` would.

    For lines already at hand: the ones placement just wrote (the order is serialised twice
    right after placement), or the ones ``order_get`` read with their order in one query.
    """
    queryset = order.lines.all()
    queryset._result_cache = lines
    queryset._prefetch_done = True  # type: ignore[attr-defined]
    # Django's own prefetch cache (what prefetch_related fills); there is no public setter.
    order._prefetched_objects_cache = {"lines": queryset}  # type: ignore[attr-defined]
