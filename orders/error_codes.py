from enum import StrEnum


class OrderErrorCode(StrEnum):
    ORDER_NOT_FOUND = "order_not_found"
    SOLD_OUT = "sold_out"
    TOO_MANY_OPEN_ORDERS = "too_many_open_orders"
    TOTAL_TOO_LARGE = "total_too_large"
    UNKNOWN_SKU = "unknown_sku"
    PRODUCT_INACTIVE = "product_inactive"
    DUPLICATE_SKU = "duplicate_sku"
    MIXED_CURRENCIES = "mixed_currencies"
    EMAIL_REQUIRED = "email_required"
    INVALID_TRANSITION = "invalid_transition"
    TRANSITION_NOT_PERMITTED = "transition_not_permitted"
    INVALID_SIGNATURE = "invalid_signature"
