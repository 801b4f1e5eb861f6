"""The product API: staff create products and adjust stock, everyone authenticated reads."""

import pytest

from tests.factories import make_product

pytestmark = pytest.mark.django_db


def attrs(response) -> set[str]:
    return {error["attr"] for error in response.json()["errors"]}


def test_staff_create_products_and_adjust_stock(staff, customer, client_for):
    client = client_for(staff)

    # when staff create a product, add stock, then try to remove more than there is
    created = client.post(
        "/api/v1/products/", {"sku": "NEW-1", "name": "New", "price": "3.20", "stock": 4}, format="json"
    )
    adjusted = client.post(
        "/api/v1/products/NEW-1/stock-adjustments/", {"delta": 6, "reason": "delivery"}, format="json"
    )
    refused = client.post("/api/v1/products/NEW-1/stock-adjustments/", {"delta": -11, "reason": "theft"}, format="json")
    listed = client_for(customer).get("/api/v1/products/").json()

    # then the product exists with its stock, and the impossible removal was refused
    assert created.status_code == 201
    assert created.json() == {
        "sku": "NEW-1", "name": "New", "price": "3.20", "currency": "USD", "available": 4, "active": True
    }  # fmt: skip
    assert adjusted.status_code == 201
    assert adjusted.json()["available"] == 10
    assert refused.status_code == 409
    assert listed["count"] == 1
    assert listed["results"][0]["available"] == 10


def test_customers_cannot_create_products_or_adjust_stock(customer, client_for):
    # given a product
    product = make_product()
    client = client_for(customer)

    # when a customer tries the staff's writes, then each is forbidden
    assert (
        client.post("/api/v1/products/", {"sku": "X", "name": "X", "price": "1", "stock": 1}, format="json").status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/products/{product.sku}/stock-adjustments/", {"delta": 1, "reason": "x"}, format="json"
        ).status_code
        == 403
    )


def test_product_validation_and_duplicates(staff, client_for):
    # given a product A1
    client = client_for(staff)
    client.post("/api/v1/products/", {"sku": "A1", "name": "A", "price": "1.00", "stock": 1}, format="json")

    # when A1 is created again, a product has negative figures, and an unknown one is asked for
    duplicate = client.post("/api/v1/products/", {"sku": "A1", "name": "A", "price": "1.00", "stock": 1}, format="json")
    negative = client.post("/api/v1/products/", {"sku": "B1", "name": "B", "price": "-1", "stock": -1}, format="json")
    unknown = client.get("/api/v1/products/NOPE/")

    # then each is refused for what it is
    assert duplicate.status_code == 409
    assert negative.status_code == 400
    assert attrs(negative) == {"price", "stock"}
    assert unknown.status_code == 404


def test_a_method_no_view_serves_is_405_after_authentication(staff, client_for, api_client):
    # when products are deleted wholesale, anonymously or as staff
    anonymous = api_client.delete("/api/v1/products/")
    allowed = client_for(staff).delete("/api/v1/products/")

    # then the anonymous caller is asked to log in, and staff are told which methods there are
    assert anonymous.status_code == 401
    assert allowed.status_code == 405
    assert allowed["Allow"] == "GET, POST, HEAD, OPTIONS"
