"""The order as the API, e-mails and merchant webhooks show it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework import serializers

from orders.models import Order, OrderEvent, OrderLine, OrderStatus

# The two serialisers below are on every order read and write. They declare their fields
# rather than derive them from the models (``ModelSerializer``), because a ModelSerializer
# rebuilds its fields from the model on every instantiation: about a tenth of the Python work
# of an order read, twice per order placed. The types mirror the models' fields (orders/models.py).


class OrderLineOutputSerializer(serializers.Serializer[OrderLine]):
    sku = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    quantity = serializers.IntegerField(read_only=True)
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)


class OrderOutputSerializer(serializers.Serializer[Any]):  # an Order, or a list with many=True
    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=OrderStatus.choices, read_only=True)
    email = serializers.EmailField(read_only=True)
    items = OrderLineOutputSerializer(source="lines", many=True, read_only=True)
    total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    currency = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    reserved_at = serializers.DateTimeField(read_only=True, allow_null=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    paid_at = serializers.DateTimeField(read_only=True, allow_null=True)


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
