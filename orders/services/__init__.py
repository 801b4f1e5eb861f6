"""Order use cases, one module per subdomain.

The entry points own their transaction: ``order_place``, the actions (``order_cancel`` ...
``order_refund``, by name in ``ORDER_ACTIONS``), ``order_reserve``, ``order_reservation_retry``,
``order_reservation_sweep``, ``order_expire_overdue`` and ``payment_callback_process``.
``orders_transition`` is what they share: call it inside their transaction, holding the orders'
row locks.
"""

from orders.services.expiry import order_expire_overdue
from orders.services.payments import PaymentCallback, payment_callback_process
from orders.services.placement import OrderItem, SoldOut, TooManyOpenOrders, order_place
from orders.services.reservation import order_reservation_retry, order_reservation_sweep, order_reserve
from orders.services.transitions import (
    ORDER_ACTIONS,
    InvalidTransition,
    TransitionNotPermitted,
    order_cancel,
    order_complete,
    order_mark_paid,
    order_refund,
    order_ship,
    orders_transition,
)

__all__ = [
    "ORDER_ACTIONS",
    "InvalidTransition",
    "OrderItem",
    "PaymentCallback",
    "SoldOut",
    "TooManyOpenOrders",
    "TransitionNotPermitted",
    "order_cancel",
    "order_complete",
    "order_expire_overdue",
    "order_mark_paid",
    "order_place",
    "order_refund",
    "order_reservation_retry",
    "order_reservation_sweep",
    "order_reserve",
    "order_ship",
    "orders_transition",
    "payment_callback_process",
]
