"""The order as the API, e-mails and merchant webhooks show it: one representation for all.

The services build event payloads here and the API answers with the same function, so a
webhook's ``data`` is exactly what ``GET /orders/{id}/`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework import serializers

from orders.models import Order, OrderLine, OrderStatus

# The two serialisers below are on every order read and write (the API's schema names them too).
# They declare their fields rather than derive them from the models (``ModelSerializer``), which
# reads the model to build them; the types mirror the models' fields (orders/models.py). They are
# built once per process (below), not per request.


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


# One instance, built once and shared by every request and thread. Building a serialiser
# deep-copies and binds its fields, which cost six times what representing an order with them
# does; representing changes nothing on the serialiser, so one instance serves all.
_ORDER = OrderOutputSerializer()


def order_payload(order: Order) -> dict[str, Any]:
    """The order as JSON-ready data (money as decimal strings, times as ISO 8601)."""
    return _ORDER.to_representation(order)


def orders_payload(orders: Iterable[Order]) -> list[dict[str, Any]]:
    return [_ORDER.to_representation(order) for order in orders]
