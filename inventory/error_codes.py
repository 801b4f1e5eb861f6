from enum import StrEnum


class InventoryErrorCode(StrEnum):
    PRODUCT_NOT_FOUND = "product_not_found"
    SKU_TAKEN = "sku_taken"
    INSUFFICIENT_STOCK = "insufficient_stock"
    STOCK_LIMIT_EXCEEDED = "stock_limit_exceeded"
    PRODUCT_INACTIVE = "product_inactive"
