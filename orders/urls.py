from django.urls import path

from core.routing import MethodRoutedApi
from orders import apis
from orders.services import ORDER_ACTIONS

urlpatterns = [
    path("orders/", MethodRoutedApi.view(get=apis.OrderListApi, post=apis.OrderCreateApi), name="order-list"),
    path("orders/<int:order_id>/", apis.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:order_id>/events/", apis.OrderEventListApi.as_view(), name="order-events"),
    *(
        path(
            f"orders/<int:order_id>/{action}/",
            apis.OrderActionApi.as_view(action_name=action),
            name=f"order-{action}",
        )
        for action in ORDER_ACTIONS
    ),
    path("payments/webhook/", apis.PaymentWebhookApi.as_view(), name="payment-webhook"),
]
