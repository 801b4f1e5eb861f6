"""A token's user cached in Redis (core/token_cache.py): no query while cached, and every
revocation (logout, password change, deactivation, deletion, expiry) refused at once.

Without a test transaction around them (``transaction=True``): copies and tombstones are
written by on-commit hooks, which a test transaction would never run.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import ApiToken
from core.token_cache import token_cache_store
from tests.factories import make_product, token_for

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-pass-for-tests"
UNREACHABLE_REDIS = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def cached(token: str) -> APIClient:
    """A client whose token's copy is in Redis (its first request read it from the database)."""
    client = with_token(token)
    assert client.get("/api/v1/orders/").status_code == 200
    return client


def test_a_cached_token_and_order_are_read_without_a_query(alice, django_assert_num_queries):
    client = cached(token_for(alice))
    product = make_product(stock=5)
    order_id = client.post("/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 1}]}, format="json").json()[
        "id"
    ]
    assert client.get(f"/api/v1/orders/{order_id}/").status_code == 200  # the order's copy

    with django_assert_num_queries(0):
        response = client.get(f"/api/v1/orders/{order_id}/")
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"


def test_a_sold_out_refusal_with_a_cached_token_makes_no_query(alice, django_assert_num_queries):
    client = cached(token_for(alice))
    product = make_product(stock=0)
    body = {"items": [{"sku": product.sku, "quantity": 1}]}
    assert client.post("/api/v1/orders/", body, format="json").status_code == 409  # writes the mark

    with django_assert_num_queries(0):
        response = client.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "sold_out"


def test_logout_revokes_the_cached_token_at_once(alice):
    client = cached(token_for(alice))
    assert client.post("/api/v1/auth/logout/").status_code == 204
    assert client.get("/api/v1/orders/").status_code == 401


def test_a_password_change_revokes_cached_tokens_at_once(alice):
    client = cached(token_for(alice))
    alice.set_password("another-long-pass-for-tests")
    alice.save()
    assert client.get("/api/v1/orders/").status_code == 401


def test_a_password_changed_in_the_admin_revokes_cached_tokens_at_once(alice):
    client = cached(token_for(alice))
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))
    changed = admin.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": "third-long-pass-for-tests", "password2": "third-long-pass-for-tests"},
    )
    assert changed.status_code == 302
    assert client.get("/api/v1/orders/").status_code == 401


def test_a_deactivated_user_is_refused_at_once(alice):
    client = cached(token_for(alice))
    alice.is_active = False
    alice.save()
    assert client.get("/api/v1/orders/").status_code == 401


def test_an_expired_token_is_refused_from_its_copy(alice, monkeypatch):
    client = cached(token_for(alice))
    later = timezone.now() + timedelta(hours=settings.API_TOKEN_TTL_HOURS, seconds=1)
    monkeypatch.setattr("core.tokens.timezone.now", lambda: later)
    assert client.get("/api/v1/orders/").status_code == 401


def test_a_copy_read_before_a_logout_is_never_put_back(alice):
    # given a request that read the token from the database, then paused
    token = token_for(alice)
    row = ApiToken.objects.select_related("user").get(user=alice)
    # when the token is revoked meanwhile, and the paused request then stores its copy
    assert with_token(token).post("/api/v1/auth/logout/").status_code == 204
    token_cache_store(token=row)
    # then the token is still refused
    assert with_token(token).get("/api/v1/orders/").status_code == 401


def test_with_redis_unreachable_tokens_are_checked_in_the_database(alice):
    token = token_for(alice)
    with override_settings(CACHES=UNREACHABLE_REDIS):
        assert with_token(token).get("/api/v1/orders/").status_code == 200
        assert with_token(token).post("/api/v1/auth/logout/").status_code == 204
        assert with_token(token).get("/api/v1/orders/").status_code == 401
