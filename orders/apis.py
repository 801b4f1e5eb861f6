from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import authenticated_user
from core.idempotency import idempotent
from core.openapi import raises
from core.pagination import CursorPage, OldestFirstCursorPage
from core.permissions import STAFF_ACTIONS, staff_may
from core.throttling import FailOpenUserRateThrottle
from inventory.models import SKU_MAX_LENGTH
from orders.models import MAX_QUANTITY, Actor, OrderEvent, OrderStatus
from orders.payloads import OrderOutputSerializer, order_payload, orders_payload
from orders.selectors import (
    OrderNotFound,
    order_check_visible,
    order_event_list,
    order_is_customers,
    order_list,
    order_representation_get,
)
from orders.services import (
    ORDER_ACTIONS,
    OrderItem,
    SoldOut,
    TooManyOpenOrders,
    order_place,
    payment_callback_process,
)
from orders.services.payments import InvalidPaymentPayload, InvalidSignature
from orders.services.transitions import InvalidTransition, TransitionNotPermitted

# The input's shape (the business rules are order_place's): at most this many lines, of at most
# MAX_QUANTITY units each (the order lines' constraint).
MAX_LINES = 100

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Repeat the request safely: the same key and body within 24 hours answer the first response.",
)


class OrderCreateThrottle(FailOpenUserRateThrottle):
    scope = "order_create"


class OrderListApi(APIView):
    """Orders, newest first, a page at a time: ``{"next", "previous", "results"}`` (a cursor, so
    a page costs the same however many orders came before it)."""

    pagination_class = CursorPage

    class FilterSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "OrderListFilter"

        status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
        created_after = serializers.DateTimeField(
            required=False, help_text="Orders created at or after this time (ISO 8601; UTC without an offset)."
        )
        created_before = serializers.DateTimeField(
            required=False, help_text="Orders created before this time (ISO 8601; UTC without an offset)."
        )
        email = serializers.EmailField(required=False, help_text="Staff only: orders placed with this e-mail address.")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            after, before = attrs.get("created_after"), attrs.get("created_before")
            if after is not None and before is not None and after >= before:
                raise serializers.ValidationError({"created_before": ["Must be later than created_after."]})
            return attrs

    # Built once, like the creation's input serialiser below: ``run_validation`` keeps no state.
    filter_serializer = FilterSerializer()

    @extend_schema(
        parameters=[FilterSerializer], responses=OrderOutputSerializer(many=True), operation_id="orders_list"
    )
    def get(self, request: Request) -> Response:
        # An empty parameter (a blank form field in the browsable API) is no filter.
        filters = self.filter_serializer.run_validation({k: v for k, v in request.query_params.items() if v != ""})
        if "email" in filters and not request.user.is_staff:
            raise serializers.ValidationError({"email": ["Only staff can filter orders by e-mail address."]})
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(order_list(user=request.user, **filters), request, view=self)
        return paginator.get_paginated_response(orders_payload(page or []))


class OrderCreateApi(APIView):
    throttle_classes = [OrderCreateThrottle]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "OrderCreateInput"

        class ItemSerializer(serializers.Serializer[dict[str, Any]]):
            class Meta:
                ref_name = "OrderCreateItem"

            sku = serializers.CharField(max_length=SKU_MAX_LENGTH)
            quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)

        items = ItemSerializer(many=True, allow_empty=False, max_length=MAX_LINES)  # type: ignore[call-arg]
        email = serializers.EmailField(required=False)

    # One instance validates every request: ``run_validation`` keeps no state on the serialiser
    # (``is_valid`` would), and building one per request, which deep-copies its fields, cost as
    # much as validating an order with them.
    input_serializer = InputSerializer()

    @extend_schema(
        request=InputSerializer,
        responses={202: OrderOutputSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        operation_id="orders_create",
    )
    @raises(SoldOut, TooManyOpenOrders)
    @idempotent
    def post(self, request: Request) -> Response:
        data = self.input_serializer.run_validation(request.data)
        order = order_place(
            customer=authenticated_user(request),
            email=data.get("email"),
            items=[OrderItem(sku=item["sku"], quantity=item["quantity"]) for item in data["items"]],
        )
        location = request.build_absolute_uri(reverse("order-detail", args=[order.pk]))
        return Response(order_payload(order), status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderOutputSerializer)
    @raises(OrderNotFound)
    def get(self, request: Request, order_id: int) -> Response:
        return Response(order_representation_get(user=request.user, order_id=order_id))


class OrderEventOutputSerializer(serializers.ModelSerializer[OrderEvent]):
    class Meta:
        model = OrderEvent
        fields = ["kind", "from_status", "to_status", "actor", "reason", "data", "created_at"]
        read_only_fields = fields


class OrderEventListApi(APIView):
    """The order's history, oldest first, a page at a time (a cursor, as the order list)."""

    pagination_class = OldestFirstCursorPage
    # Built once, like the order's (orders/payloads.py).
    output_serializer = OrderEventOutputSerializer()

    @extend_schema(responses=OrderEventOutputSerializer(many=True))
    @raises(OrderNotFound)
    def get(self, request: Request, order_id: int) -> Response:
        paginator = self.pagination_class()
        events = order_event_list(user=request.user, order_id=order_id)
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response([self.output_serializer.to_representation(e) for e in page or []])


class OrderActionApi(APIView):
    """POST /orders/{id}/<action>/ for cancel, pay, ship, complete and refund."""

    # Each is the service of that name in ``ORDER_ACTIONS``; the URLconf gives the name.
    action_name = ""

    @extend_schema(request=None, responses=OrderOutputSerializer, parameters=[IDEMPOTENCY_KEY_PARAMETER])
    @raises(OrderNotFound, TransitionNotPermitted, InvalidTransition)
    @idempotent
    def post(self, request: Request, order_id: int) -> Response:
        user = authenticated_user(request)
        order_check_visible(user=user, order_id=order_id)  # another customer's order: 404
        if staff_may(user, "order.act"):
            actor = Actor.STAFF
        elif user.is_staff and not order_is_customers(user=user, order_id=order_id):
            # Staff who may look at every order but not change them (core/permissions.py).
            raise PermissionDenied(f"This needs the {STAFF_ACTIONS['order.act']} permission.")
        else:
            actor = Actor.CUSTOMER  # the state table refuses what customers may not do (403)
        act = ORDER_ACTIONS[self.action_name]
        order = act(order_id=order_id, actor=actor, actor_user=user)
        return Response(order_payload(order))


class PaymentWebhookApi(APIView):
    """The payment provider's callback: authenticated by its Standard Webhooks signature."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=inline_serializer(
            "PaymentCallback",
            {
                "type": serializers.ChoiceField(choices=["payment.succeeded", "payment.failed"]),
                "order_id": serializers.IntegerField(),
                "amount": serializers.DecimalField(max_digits=14, decimal_places=2),
                "currency": serializers.CharField(),
            },
        ),
        responses={200: inline_serializer("PaymentCallbackResult", {"result": serializers.CharField()})},
        parameters=[
            OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.HEADER, required=True)
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        ],
    )
    @raises(InvalidSignature, InvalidPaymentPayload)
    def post(self, request: Request) -> Response:
        result = payment_callback_process(body=request.body, headers=dict(request.headers))
        return Response({"result": result})
