from __future__ import annotations

from django.db.models import F, QuerySet, Sum
from django.db.models.functions import Coalesce

from core.errors import NotFound
from inventory.error_codes import InventoryErrorCode
from inventory.models import Product


class ProductNotFound(NotFound):
    code = InventoryErrorCode.PRODUCT_NOT_FOUND


def product_list() -> QuerySet[Product]:
    return Product.objects.order_by("sku")


def product_get(*, sku: str) -> Product:
    try:
        return Product.objects.get(sku=sku)
    except Product.DoesNotExist as exc:
        raise ProductNotFound(f"No product with SKU {sku!r}.") from exc


def products_by_sku(*, skus: list[str]) -> dict[str, Product]:
    return {product.sku: product for product in Product.objects.filter(sku__in=skus).order_by()}


def stock_discrepancies() -> list[tuple[str, int, int]]:
    """(sku, available, ledger total) of every product whose stock differs from its ledger."""
    return list(
        Product.objects.annotate(ledger_total=Coalesce(Sum("ledger_entries__delta"), 0))
        .exclude(available=F("ledger_total"))
        .order_by("pk")
        .values_list("sku", "available", "ledger_total")
    )
