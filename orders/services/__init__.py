"""Order use cases. Each public function is an entry point that owns its transaction."""

from orders.services.expiry import order_expire_overdue
from orders.services.payments import PaymentCallback, payment_callback_process
from orders.services.placement import OrderItem, SoldOut, order_place
from orders.services.reservation import order_reserve
from orders.services.transitions import InvalidTransition, TransitionNotPermitted, order_act

__all__ = [
    "InvalidTransition",
    "OrderItem",
    "PaymentCallback",
    "SoldOut",
    "TransitionNotPermitted",
    "order_act",
    "order_expire_overdue",
    "order_place",
    "order_reserve",
    "payment_callback_process",
]
