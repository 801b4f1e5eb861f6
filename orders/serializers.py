"""The order as the API, e-mails and merchant webhooks show it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework import serializers

from orders.models import Order, OrderEvent, OrderLine


class OrderLineOutputSerializer(serializers.ModelSerializer[OrderLine]):
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = OrderLine
        fields = ["sku", "name", "quantity", "unit_price", "line_total"]


class OrderOutputSerializer(serializers.ModelSerializer[Order]):
    items = OrderLineOutputSerializer(source="lines", many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id", "status", "email", "items", "total", "currency",
            "created_at", "updated_at", "reserved_at", "expires_at", "paid_at",
        ]  # fmt: skip
        read_only_fields = fields


class OrderEventOutputSerializer(serializers.ModelSerializer[OrderEvent]):
    class Meta:
        model = OrderEvent
        fields = ["kind", "from_status", "to_status", "actor", "reason", "data", "created_at"]
        read_only_fields = fields


def order_payload(order: Order) -> dict[str, Any]:
    """The order as JSON-ready data (money as decimal strings, times as ISO 8601)."""
    return dict(OrderOutputSerializer(order).data)


def orders_payload(orders: Sequence[Order]) -> list[dict[str, Any]]:
    """:func:`order_payload` of many orders; the serializer's fields are built once, not per order."""
    return [dict(data) for data in OrderOutputSerializer(orders, many=True).data]
