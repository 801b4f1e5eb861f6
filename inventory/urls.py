from django.urls import path, register_converter

from core.routing import MethodRoutedApi
from inventory import apis


class SkuConverter:
    """A SKU as products are created with (inventory.apis.SKU_PATTERN): anything else is a 404."""

    regex = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SkuConverter, "sku")

urlpatterns = [
    path("products/", MethodRoutedApi.view(get=apis.ProductListApi, post=apis.ProductCreateApi), name="product-list"),
    path("products/<sku:sku>/", apis.ProductDetailApi.as_view(), name="product-detail"),
    path(
        "products/<sku:sku>/stock-adjustments/",
        apis.StockAdjustmentCreateApi.as_view(),
        name="product-stock-adjustments",
    ),
]
