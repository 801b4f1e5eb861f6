from django.urls import URLPattern, path

from notifications import apis

urlpatterns: list[URLPattern] = [
    path("webhooks/endpoints/", apis.WebhookEndpointsApi.as_view(), name="webhook-endpoints"),
    path("webhooks/deliveries/", apis.WebhookDeliveryListApi.as_view(), name="webhook-deliveries"),
]
