from django.urls import path

from orders import apis

urlpatterns = [
    path("orders/", apis.OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<int:order_id>/", apis.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:order_id>/events/", apis.OrderEventListApi.as_view(), name="order-events"),
    *(
        path(
            f"orders/<int:order_id>/{action}/",
            apis.OrderActionApi.as_view(action_name=action),
            name=f"order-{action}",
        )
        for action in ("cancel", "pay", "ship", "complete", "refund")
    ),
    path("payments/webhook/", apis.PaymentWebhookApi.as_view(), name="payment-webhook"),
]
