"""Idempotency-Key on the POSTs that change orders."""

import threading
import time

import pytest
from django.db import connection

import orders.apis
from core.models import IdempotencyKey
from orders.models import Order
from orders.services import order_reserve
from tests.factories import UserFactory, make_order, make_product


def post_order(client, sku: str, key: str, quantity: int = 1):
    return client.post(
        "/api/v1/orders/",
        {"items": [{"sku": sku, "quantity": quantity}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.mark.django_db
def test_a_replayed_request_answers_the_first_response_and_creates_nothing(client_for):
    customer = UserFactory()
    product = make_product()
    client = client_for(customer)

    first = post_order(client, product.sku, "key-1")
    again = post_order(client, product.sku, "key-1")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_a_different_body_is_422(client_for):
    customer = UserFactory()
    product = make_product()
    client = client_for(customer)
    post_order(client, product.sku, "key-1", quantity=1)

    response = post_order(client, product.sku, "key-1", quantity=2)

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_keys_belong_to_one_user(client_for):
    product = make_product()

    post_order(client_for(UserFactory()), product.sku, "shared-key")
    response = post_order(client_for(UserFactory()), product.sku, "shared-key")

    assert response.status_code == 202
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_a_failed_request_is_not_stored_and_can_be_retried_with_its_key(client_for):
    customer = UserFactory()
    client = client_for(customer)

    refused = post_order(client, "NOT-YET", "key-1")
    make_product(sku="NOT-YET")
    accepted = post_order(client, "NOT-YET", "key-1")

    assert (refused.status_code, accepted.status_code) == (400, 202)


@pytest.mark.django_db
def test_an_over_long_key_is_refused(client_for):
    response = post_order(client_for(UserFactory()), make_product().sku, "k" * 256)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_idempotency_key"


@pytest.mark.django_db
def test_a_replayed_cancel_answers_200_again_instead_of_409(client_for):
    customer = UserFactory()
    order = make_order(customer=customer, lines=[(make_product(), 1)])
    order_reserve(order_id=order.pk)
    client = client_for(customer)

    first = client.post(f"/api/v1/orders/{order.pk}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")
    again = client.post(f"/api/v1/orders/{order.pk}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")
    without_key = client.post(f"/api/v1/orders/{order.pk}/cancel/")

    assert (first.status_code, again.status_code, without_key.status_code) == (200, 200, 409)
    assert again.json() == first.json()


@pytest.mark.django_db(transaction=True)
def test_a_request_whose_key_is_still_being_processed_is_409(monkeypatch, client_for):
    # given a first request that takes a while inside its transaction
    customer = UserFactory()
    product = make_product()
    real_order_place = orders.apis.order_place
    first_started = threading.Event()

    def slow_order_place(**kwargs):
        first_started.set()
        time.sleep(1.0)
        return real_order_place(**kwargs)

    monkeypatch.setattr(orders.apis, "order_place", slow_order_place)
    results = {}

    def first_request():
        try:
            results["first"] = post_order(client_for(customer), product.sku, "key-1")
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    assert first_started.wait(timeout=10)

    # when the same key arrives while the first is still running
    concurrent = post_order(client_for(customer), product.sku, "key-1")
    thread.join(timeout=30)
    after = post_order(client_for(customer), product.sku, "key-1")

    # then it is told so, and once the first finished the key replays its answer
    assert concurrent.status_code == 409
    assert concurrent.json()["errors"][0]["code"] == "idempotency_key_in_progress"
    assert results["first"].status_code == 202
    assert after.status_code == 202
    assert after.json()["id"] == results["first"].json()["id"]
    assert Order.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
