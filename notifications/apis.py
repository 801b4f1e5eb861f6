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
from core.pagination import CursorPage
from core.permissions import staff_permission
from notifications.errors import (
    AlreadyDelivered,
    CircuitChangeRefused,
    InvalidEventTypes,
    NotResendable,
    UnsafeWebhookUrl,
)
from notifications.models import PING_EVENT_TYPE, CircuitState, EventType, WebhookDelivery
from notifications.selectors import (
    webhook_delivery_get,
    webhook_delivery_list,
    webhook_endpoint_get,
    webhook_endpoint_list,
)
from notifications.services import webhook_endpoint_create
from notifications.services.circuit import webhook_endpoint_circuit_set
from notifications.services.recovery import webhook_delivery_retry
from notifications.services.webhooks import (
    webhook_endpoint_delete,
    webhook_endpoint_ping,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_update,
)


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
    """Deliveries, newest first, with their status, last response code and attempt count; a
    cursor page (``{"next", "previous", "results"}``), an index behind each filter."""

    permission_classes = [staff_permission("webhook_delivery.view")]
    pagination_class = CursorPage

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
        sequence = serializers.IntegerField(allow_null=True)
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
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deliveries = webhook_delivery_list(
            status=filters.validated_data.get("status"),
            endpoint_id=filters.validated_data.get("endpoint"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page or [], many=True).data)


class WebhookEndpointGetApi(APIView):
    """One endpoint, with its circuit; never its secret."""

    permission_classes = [staff_permission("webhook_endpoint.view")]

    @extend_schema(operation_id="webhook_endpoints_retrieve", responses=WebhookEndpointOutputSerializer)
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(WebhookEndpointOutputSerializer(webhook_endpoint_get(endpoint_id=endpoint_id)).data)


class WebhookEndpointUpdateApi(APIView):
    """Change an endpoint's URL, events or activity (reactivating one closes its circuit)."""

    permission_classes = [staff_permission("webhook_endpoint.change")]

    @extend_schema_serializer(component_name="WebhookEndpointUpdate")
    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=2048, required=False)
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EventType.choices), min_length=1, max_length=100, required=False
        )
        active = serializers.BooleanField(required=False)

    @extend_schema(
        operation_id="webhook_endpoints_partial_update",
        request=InputSerializer,
        responses=WebhookEndpointOutputSerializer,
    )
    @raises(UnsafeWebhookUrl, InvalidEventTypes)
    def patch(self, request: Request, endpoint_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint_id=endpoint_id, actor=request.user, **serializer.validated_data)
        return Response(WebhookEndpointOutputSerializer(endpoint).data)


class WebhookEndpointDeleteApi(APIView):
    """Delete an endpoint: nothing more is sent to it; its past deliveries stay listed."""

    permission_classes = [staff_permission("webhook_endpoint.delete")]

    @extend_schema(operation_id="webhook_endpoints_destroy", responses={204: None})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        webhook_endpoint_delete(endpoint_id=endpoint_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointSecretRotateApi(APIView):
    """A new signing secret, shown this once; the old one keeps signing beside it for 24 hours."""

    permission_classes = [staff_permission("webhook_endpoint.change")]

    @extend_schema_serializer(component_name="WebhookEndpointRotated")
    class OutputSerializer(WebhookEndpointOutputSerializer):
        secret = serializers.CharField()
        previous_secret_expires_at = serializers.DateTimeField()

    @extend_schema(operation_id="webhook_endpoints_rotate_secret", request=None, responses=OutputSerializer)
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = webhook_endpoint_secret_rotate(endpoint_id=endpoint_id, actor=request.user)
        return Response(self.OutputSerializer(endpoint).data)


class WebhookEndpointPingApi(APIView):
    """Send a signed ``ping`` event now and say what the endpoint answered."""

    permission_classes = [staff_permission("webhook_endpoint.change")]

    @extend_schema_serializer(component_name="WebhookPingResult")
    class OutputSerializer(serializers.Serializer):
        succeeded = serializers.BooleanField(help_text="The endpoint answered 2xx.")
        status_code = serializers.IntegerField(allow_null=True)
        duration_ms = serializers.IntegerField()
        error = serializers.CharField(help_text="Why it failed: a timeout, a refused connection, a status.")
        body = serializers.CharField(help_text="The start of the answer (at most 4 KiB).")

    @extend_schema(operation_id="webhook_endpoints_ping", request=None, responses=OutputSerializer)
    def post(self, request: Request, endpoint_id: int) -> Response:
        response = webhook_endpoint_ping(endpoint_id=endpoint_id)
        answer = {
            "succeeded": response.verdict == "succeeded",
            "status_code": response.status_code,
            "duration_ms": response.duration_ms,
            "error": response.error,
            "body": response.body,
        }
        return Response(self.OutputSerializer(answer).data)


class WebhookEndpointCircuitApi(APIView):
    """Close an endpoint's circuit (send again now) or open it (pause its deliveries for an hour)."""

    permission_classes = [staff_permission("webhook_endpoint.change")]

    @extend_schema_serializer(component_name="WebhookCircuitChange")
    class InputSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=[CircuitState.CLOSED, CircuitState.OPEN])

    @extend_schema(
        operation_id="webhook_endpoints_circuit", request=InputSerializer, responses=WebhookEndpointOutputSerializer
    )
    @raises(CircuitChangeRefused)
    def post(self, request: Request, endpoint_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_circuit_set(
            endpoint_id=endpoint_id, state=serializer.validated_data["state"], actor=request.user
        )
        return Response(WebhookEndpointOutputSerializer(endpoint).data)


EVENT_TYPE_DESCRIPTIONS = {
    **{value: f"An order became {value.removeprefix('order.')}." for value in EventType.values},
    PING_EVENT_TYPE: "A test event sent on request (POST .../endpoints/{id}/ping/); not subscribable.",
}


class WebhookEventTypeListApi(APIView):
    """The event catalogue: every type a webhook can carry."""

    permission_classes = [staff_permission("webhook_endpoint.view")]

    @extend_schema_serializer(component_name="WebhookEventType")
    class OutputSerializer(serializers.Serializer):
        type = serializers.CharField()
        description = serializers.CharField()
        subscribable = serializers.BooleanField()

    @extend_schema(operation_id="webhook_event_types_list", responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        catalogue = [
            {"type": value, "description": description, "subscribable": value in EventType.values}
            for value, description in EVENT_TYPE_DESCRIPTIONS.items()
        ]
        return Response(self.OutputSerializer(catalogue, many=True).data)


class WebhookDeliveryRetryApi(APIView):
    """Send a failed or dead-lettered delivery again, with a fresh attempt budget (never one
    that succeeded); its dead letter is removed."""

    permission_classes = [staff_permission("webhook_delivery.resend")]

    @extend_schema(
        operation_id="webhook_deliveries_retry", request=None, responses={202: WebhookDeliveryListApi.OutputSerializer}
    )
    @raises(NotResendable, AlreadyDelivered)
    def post(self, request: Request, delivery_id: int) -> Response:
        webhook_delivery_retry(delivery=webhook_delivery_get(delivery_id=delivery_id), actor=request.user)
        delivery = webhook_delivery_get(delivery_id=delivery_id)
        return Response(WebhookDeliveryListApi.OutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
