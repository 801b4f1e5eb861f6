from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import authenticated_user
from core.openapi import raises
from core.permissions import staff_permission
from inventory.models import SKU_MAX_LENGTH, Product
from inventory.selectors import ProductNotFound, product_get, product_list
from inventory.services import (
    InsufficientStockForAdjustment,
    SkuTaken,
    StockLimitExceeded,
    product_create,
    stock_adjust,
)

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ProductOutputSerializer(serializers.ModelSerializer[Product]):
    class Meta:
        model = Product
        fields = ["sku", "name", "price", "currency", "available", "active"]
        read_only_fields = fields


class ProductListApi(APIView):
    pagination_class = PageNumberPagination

    @extend_schema(responses=ProductOutputSerializer(many=True), operation_id="products_list")
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(product_list(), request, view=self)
        return paginator.get_paginated_response(ProductOutputSerializer(page, many=True).data)


class ProductCreateApi(APIView):
    permission_classes = [staff_permission("product.create")]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "ProductCreateInput"

        sku = serializers.RegexField(SKU_PATTERN, max_length=SKU_MAX_LENGTH)
        name = serializers.CharField(max_length=200)
        price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
        currency = serializers.RegexField(r"^[A-Z]{3}$", default="USD")
        stock = serializers.IntegerField(min_value=0, max_value=1_000_000_000)

    @extend_schema(request=InputSerializer, responses={201: ProductOutputSerializer}, operation_id="products_create")
    @raises(SkuTaken)
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = product_create(**serializer.validated_data, actor=authenticated_user(request))
        return Response(ProductOutputSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(APIView):
    @extend_schema(responses=ProductOutputSerializer)
    @raises(ProductNotFound)
    def get(self, request: Request, sku: str) -> Response:
        return Response(ProductOutputSerializer(product_get(sku=sku)).data)


class StockAdjustmentCreateApi(APIView):
    permission_classes = [staff_permission("stock.adjust")]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "StockAdjustmentInput"

        delta = serializers.IntegerField(min_value=-1_000_000_000, max_value=1_000_000_000)
        reason = serializers.CharField(max_length=255)

        def validate_delta(self, value: int) -> int:
            if value == 0:
                raise serializers.ValidationError("A stock adjustment must change the stock.")
            return value

    class OutputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "StockAdjustment"

        sku = serializers.CharField()
        delta = serializers.IntegerField()
        reason = serializers.CharField()
        available = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    @raises(ProductNotFound, InsufficientStockForAdjustment, StockLimitExceeded)
    def post(self, request: Request, sku: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = stock_adjust(
            product=product_get(sku=sku), **serializer.validated_data, actor=authenticated_user(request)
        )
        data = {**serializer.validated_data, "sku": product.sku, "available": product.available}
        return Response(self.OutputSerializer(data).data, status=status.HTTP_201_CREATED)
