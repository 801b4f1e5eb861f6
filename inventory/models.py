from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

# The longest SKU: a product's, an order line's copy of it, and what the API takes as one.
SKU_MAX_LENGTH = 64


class Product(models.Model):
    sku = models.CharField(max_length=SKU_MAX_LENGTH, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    active = models.BooleanField(default=True)
    # Units that can still be reserved. Changed only by inventory.services, always together with
    # a ledger row, and only through conditional updates (never read-modify-write).
    available = models.IntegerField(default=0)
    # Units asked for by orders that are accepted but not yet reserved or rejected: what
    # ``available`` will lose if they are all served. Raised by order placement and lowered when an
    # order leaves ``pending``, in the same transactions; order placement refuses what
    # ``available - claimed`` cannot serve. Not part of the ledger: no stock moves.
    claimed = models.IntegerField(default=0)
    # Raised by every statement that changes ``available``, ``claimed`` or whether the product is
    # for sale: orders the copies of that state kept in Redis (inventory/stock_marks.py). A database
    # default too, so the previous release keeps creating products during a deploy.
    stock_version = models.BigIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            # The last line of defence against overselling: PostgreSQL refuses negative stock.
            models.CheckConstraint(condition=Q(available__gte=0), name="product_available_non_negative"),
            models.CheckConstraint(condition=Q(claimed__gte=0), name="product_claimed_non_negative"),
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.name})"


class StockLedgerEntry(models.Model):
    """One change of a product's stock. For every product, the deltas add up to ``available``."""

    class Kind(models.TextChoices):
        INITIAL = "initial", "Initial stock"
        ADJUSTMENT = "adjustment", "Adjustment"
        RESERVATION = "reservation", "Reservation"
        RELEASE = "release", "Release"

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    delta = models.IntegerField()
    # Orders are known here only by id: inventory does not depend on the orders app.
    order_id = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    # Who adjusted the stock (adjustments by staff; the system's own rows have none). No index:
    # nothing looks rows up by it (the audit trail does), and the ledger is large and hot.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "stock ledger entries"
        constraints = [
            # A redelivered reservation or release cannot be applied twice.
            models.UniqueConstraint(
                fields=["order_id", "product"],
                condition=Q(kind="reservation"),
                name="ledger_one_reservation_per_order_product",
            ),
            models.UniqueConstraint(
                fields=["order_id", "product"],
                condition=Q(kind="release"),
                name="ledger_one_release_per_order_product",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="reservation", delta__lt=0, order_id__isnull=False)
                    | Q(kind="release", delta__gt=0, order_id__isnull=False)
                    | Q(kind="initial", delta__gte=0)
                    | Q(kind="adjustment")
                ),
                name="ledger_delta_sign_matches_kind",
            ),
        ]
        indexes = [models.Index(fields=["product", "created_at"], name="ledger_product_created_idx")]

    def __str__(self) -> str:
        return f"{self.product_id} {self.kind} {self.delta:+d}"
