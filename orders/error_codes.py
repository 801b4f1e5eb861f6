from enum import StrEnum


class OrderErrorCode(StrEnum):
    ORDER_NOT_FOUND = "order_not_found"
    SOLD_OUT = "sold_out"
    INVALID_TRANSITION = "invalid_transition"
    TRANSITION_NOT_PERMITTED = "transition_not_permitted"
    INVALID_SIGNATURE = "invalid_signature"
