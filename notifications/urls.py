from django.urls import URLPattern, path

from core.routing import MethodRoutedApi
from notifications import apis

urlpatterns: list[URLPattern] = [
    path(
        "webhooks/endpoints/",
        MethodRoutedApi.view(get=apis.WebhookEndpointListApi, post=apis.WebhookEndpointCreateApi),
        name="webhook-endpoints",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/",
        MethodRoutedApi.view(
            get=apis.WebhookEndpointGetApi, patch=apis.WebhookEndpointUpdateApi, delete=apis.WebhookEndpointDeleteApi
        ),
        name="webhook-endpoint",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/rotate-secret/",
        apis.WebhookEndpointSecretRotateApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/ping/",
        apis.WebhookEndpointPingApi.as_view(),
        name="webhook-endpoint-ping",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/circuit/",
        apis.WebhookEndpointCircuitApi.as_view(),
        name="webhook-endpoint-circuit",
    ),
    path("webhooks/event-types/", apis.WebhookEventTypeListApi.as_view(), name="webhook-event-types"),
    path("webhooks/deliveries/", apis.WebhookDeliveryListApi.as_view(), name="webhook-deliveries"),
    path(
        "webhooks/deliveries/<int:delivery_id>/retry/",
        apis.WebhookDeliveryRetryApi.as_view(),
        name="webhook-delivery-retry",
    ),
]
