"""Staff API for merchant webhooks: endpoints and deliveries. One view per operation, each with
its own nested input and output serializers; logic in services and selectors."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.audit import audit_record
from core.openapi import raises
from core.permissions import staff_permission
from notifications.errors import InvalidEventTypes, UnsafeWebhookUrl
from notifications.models import CircuitState, EventType, WebhookDelivery
from notifications.selectors import webhook_delivery_list, webhook_endpoint_list
from notifications.services import webhook_endpoint_create


def _paginated_response(
    *,
    serializer_class: type[serializers.Serializer],
    queryset: QuerySet[Any],
    request: Request,
    view: APIView,
) -> Response:
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _paginated_schema(name: str, serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


@extend_schema_serializer(component_name="WebhookEndpointCircuit")
class WebhookEndpointCircuitSerializer(serializers.Serializer):
    """The endpoint's circuit (README: merchant webhooks)."""

    state = serializers.ChoiceField(choices=CircuitState.choices, source="circuit_state")
    consecutive_failures = serializers.IntegerField()
    failing_since = serializers.DateTimeField(allow_null=True)
    # When the next probe may go (open), or when the probe in flight is given up on (half_open).
    retry_at = serializers.DateTimeField(allow_null=True, source="circuit_retry_at")
    disabled_at = serializers.DateTimeField(allow_null=True)


@extend_schema_serializer(component_name="WebhookEndpoint")
class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    circuit = WebhookEndpointCircuitSerializer(source="*")


class WebhookEndpointListApi(APIView):
    """The endpoints, newest first; never their secrets."""

    permission_classes = [staff_permission("webhook_endpoint.view")]

    @extend_schema(
        operation_id="webhook_endpoints_list",
        description="Merchant webhook endpoints, newest first. Their secrets are never shown here.",
        responses=_paginated_schema("PaginatedWebhookEndpointList", WebhookEndpointOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        return _paginated_response(
            serializer_class=WebhookEndpointOutputSerializer,
            queryset=webhook_endpoint_list(),
            request=request,
            view=self,
        )


class WebhookEndpointCreateApi(APIView):
    """Create an endpoint and show its secret, that once."""

    permission_classes = [staff_permission("webhook_endpoint.add")]

    @extend_schema_serializer(component_name="WebhookEndpointCreate")
    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=2048)
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EventType.choices),
            min_length=1,
            max_length=100,
        )
        active = serializers.BooleanField(default=True)

    @extend_schema_serializer(component_name="WebhookEndpointWithSecret")
    class OutputSerializer(WebhookEndpointOutputSerializer):
        secret = serializers.CharField()

    @extend_schema(
        operation_id="webhook_endpoints_create",
        description="Create an endpoint. The answer includes its signing secret, shown this once.",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    @raises(UnsafeWebhookUrl, InvalidEventTypes)
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic(durable=True):
            endpoint = webhook_endpoint_create(**serializer.validated_data)
            audit_record(
                actor=request.user,
                action="webhook_endpoint.add",
                target_type="webhook_endpoint",
                target_id=endpoint.pk,
                after={"url": endpoint.url, "events": endpoint.events, "active": endpoint.active},
            )
        return Response(self.OutputSerializer(endpoint).data, status=status.HTTP_201_CREATED)


# The filters are a serializer validated by hand, which the library does not see.
@extend_validation_errors(["invalid_choice", "blank", "null"], field_name="status", methods=["get"])
@extend_validation_errors(["invalid", "min_value", "max_string_length", "null"], field_name="endpoint", methods=["get"])
class WebhookDeliveryListApi(APIView):
    """Deliveries, newest first, with their status, last response code and attempt count."""

    permission_classes = [staff_permission("webhook_delivery.view")]

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)
        endpoint = serializers.IntegerField(required=False, min_value=1)

    @extend_schema_serializer(component_name="WebhookDelivery")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        event_id = serializers.UUIDField()
        event_type = serializers.CharField(source="event.event_type")
        endpoint = inline_serializer(
            name="WebhookDeliveryEndpoint",
            fields={"id": serializers.IntegerField(), "url": serializers.URLField()},
        )
        status = serializers.CharField()
        attempts = serializers.IntegerField(source="attempt_count")
        last_response_code = serializers.IntegerField(allow_null=True)
        last_error = serializers.CharField()
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()
        last_attempt_at = serializers.DateTimeField(allow_null=True)
        next_attempt_at = serializers.DateTimeField(allow_null=True)
        succeeded_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="webhook_deliveries_list",
        parameters=[FilterSerializer],
        responses=_paginated_schema("PaginatedWebhookDeliveryList", OutputSerializer),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deliveries = webhook_delivery_list(
            status=filters.validated_data.get("status"),
            endpoint_id=filters.validated_data.get("endpoint"),
        )
        return _paginated_response(
            serializer_class=self.OutputSerializer, queryset=deliveries, request=request, view=self
        )
