"""The OpenAPI document declares the error answers of the contract, with the codes the code raises.

The schemathesis run (tests/reliability/test_api_schema.py) checks the answers its generated
requests meet; these pin the ones random requests rarely reach (a taken SKU, a refused
transition, an idempotency conflict, an outage).
"""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from core.errors import DomainError, ServiceUnavailable
from core.idempotency import IdempotencyKeyInProgress, IdempotencyKeyReused, InvalidIdempotencyKey
from inventory.selectors import ProductNotFound
from inventory.services import InsufficientStockForAdjustment, SkuTaken
from notifications.errors import InvalidEventTypes, UnsafeWebhookUrl
from orders.selectors import OrderNotFound
from orders.services.payments import InvalidPaymentPayload, InvalidSignature
from orders.services.transitions import InvalidTransition, TransitionNotPermitted

ACTION = "/api/v1/orders/{order_id}/ship/"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def documented_codes(schema: dict[str, Any], method: str, path: str, status: int) -> set[str]:
    """Every enumerated ``code`` of the operation's ``status`` answer, across its variants."""
    response = schema["paths"][path][method]["responses"][str(status)]
    pending = [response["content"]["application/json"]["schema"]]
    codes: set[str] = set()
    while pending:
        node = _resolve(schema, pending.pop())
        pending.extend(node.get("oneOf", []))
        errors = node.get("properties", {}).get("errors")
        if errors is not None:
            code = _resolve(schema, _resolve(schema, errors["items"])["properties"]["code"])
            codes.update(code.get("enum", []))
    return codes


@pytest.mark.parametrize(
    ("method", "path", "status", "errors"),
    [
        ("post", "/api/v1/payments/webhook/", 401, [InvalidSignature]),
        ("post", "/api/v1/payments/webhook/", 400, [InvalidPaymentPayload]),
        ("post", "/api/v1/products/", 409, [SkuTaken]),
        ("get", "/api/v1/products/{sku}/", 404, [ProductNotFound]),
        ("post", "/api/v1/products/{sku}/stock-adjustments/", 404, [ProductNotFound]),
        ("post", "/api/v1/products/{sku}/stock-adjustments/", 409, [InsufficientStockForAdjustment]),
        ("get", "/api/v1/orders/{order_id}/", 404, [OrderNotFound]),
        ("get", "/api/v1/orders/{order_id}/events/", 404, [OrderNotFound]),
        ("post", ACTION, 404, [OrderNotFound]),
        ("post", ACTION, 403, [TransitionNotPermitted]),
        ("post", ACTION, 409, [InvalidTransition, IdempotencyKeyInProgress]),
        ("post", ACTION, 422, [IdempotencyKeyReused]),
        ("post", ACTION, 400, [InvalidIdempotencyKey]),
        ("post", "/api/v1/orders/", 409, [IdempotencyKeyInProgress]),
        ("post", "/api/v1/orders/", 422, [IdempotencyKeyReused]),
        ("post", "/api/v1/webhooks/endpoints/", 400, [UnsafeWebhookUrl, InvalidEventTypes]),
    ],
)
def test_domain_errors_are_declared_with_their_codes(schema, method, path, status, errors: list[type[DomainError]]):
    assert all(error.status_code == status for error in errors)
    assert {str(error.code) for error in errors} <= documented_codes(schema, method, path, status)


def test_generic_codes_stay_next_to_domain_ones(schema):
    # a malformed id is Django's 404 "not_found", a known one the service's "order_not_found"
    assert {"not_found", "order_not_found"} <= documented_codes(schema, "get", "/api/v1/orders/{order_id}/", 404)
    assert documented_codes(schema, "post", "/api/v1/payments/webhook/", 401) == {"invalid_signature"}


def test_every_operation_declares_the_503_of_an_outage(schema):
    operations = [(path, method) for path, item in schema["paths"].items() for method in item]
    assert len(operations) >= 15
    for path, method in operations:
        codes = documented_codes(schema, method, path, 503)
        assert codes == {ServiceUnavailable.default_code}, (method, path)


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/orders/{order_id}/events/"])
def test_cursor_paginated_lists_declare_their_validation_errors(schema, path):
    # a malformed cursor or page size, or a filter's bad value, is a 400 validation error
    response = schema["paths"][path]["get"]["responses"]["400"]
    variants = _resolve(schema, response["content"]["application/json"]["schema"])
    assert "validation_error" in variants["discriminator"]["mapping"]
    assert {"cursor", "page_size"} <= {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
