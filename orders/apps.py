from typing import Any

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from django.core.signals import request_finished
        from django.db.models.signals import post_migrate

        from orders.activity import activity_flush_if_due

        # After the answer has gone: sold-out refusals counted in memory reach their rows.
        request_finished.connect(activity_flush_if_due, dispatch_uid="orders.activity.flush")
        # The database's side of order placement, as the code defines it (orders/services/placement.py).
        post_migrate.connect(_place_function_install, sender=self, dispatch_uid="orders.place_function")


def _place_function_install(using: str, **kwargs: Any) -> None:
    from orders.services.placement import place_function_install

    place_function_install(using=using)
