from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from orders.activity import activity_flush_if_due

        # After the answer has gone: sold-out refusals counted in memory reach their rows.
        request_finished.connect(activity_flush_if_due, dispatch_uid="orders.activity.flush")
