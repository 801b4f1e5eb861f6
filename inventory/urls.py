from django.urls import path

from core.routing import MethodRoutedApi
from inventory import apis

urlpatterns = [
    path("products/", MethodRoutedApi.view(get=apis.ProductListApi, post=apis.ProductCreateApi), name="product-list"),
    path("products/<str:sku>/", apis.ProductDetailApi.as_view(), name="product-detail"),
    path(
        "products/<str:sku>/stock-adjustments/",
        apis.StockAdjustmentCreateApi.as_view(),
        name="product-stock-adjustments",
    ),
]
