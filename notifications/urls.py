from django.urls import URLPattern, path

from core.routing import MethodRoutedApi
from notifications import apis

urlpatterns: list[URLPattern] = [
    path(
        "webhooks/endpoints/",
        MethodRoutedApi.view(get=apis.WebhookEndpointListApi, post=apis.WebhookEndpointCreateApi),
        name="webhook-endpoints",
    ),
    path("webhooks/deliveries/", apis.WebhookDeliveryListApi.as_view(), name="webhook-deliveries"),
]
