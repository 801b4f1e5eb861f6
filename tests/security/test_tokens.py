"""API tokens (django-rest-knox): hashed, expiring, new at each login, revoked by logout and by a
password change, never shown in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from core.models import ApiToken
from core.tokens import api_token_prune

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-pass-for-tests"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


def login(client: APIClient, username: str = "alice", password: str = PASSWORD):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_login_answers_a_token_and_its_expiry(api_client, alice):
    before = timezone.now()

    response = login(api_client)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    expires_at = parse_datetime(body["expires_at"])
    assert expires_at is not None
    assert before + timedelta(hours=720) <= expires_at <= timezone.now() + timedelta(hours=720)
    assert with_token(body["token"]).get("/api/v1/orders/").status_code == 200


def test_only_a_digest_of_the_token_is_stored(api_client, alice):
    token = login(api_client).json()["token"]

    row = ApiToken.objects.get(user=alice)
    assert token not in row.digest
    assert row.digest != token
    assert len(row.digest) == 128  # SHA-512, hex


def test_every_login_issues_a_new_token(api_client, alice):
    first = login(api_client).json()["token"]
    second = login(api_client).json()["token"]

    assert first != second
    assert with_token(first).get("/api/v1/orders/").status_code == 200
    assert with_token(second).get("/api/v1/orders/").status_code == 200


@override_settings(API_TOKEN_TTL_HOURS=1)
def test_the_lifetime_follows_the_setting(api_client, alice):
    expires_at = parse_datetime(login(api_client).json()["expires_at"])

    assert expires_at is not None
    assert expires_at <= timezone.now() + timedelta(hours=1)


def test_an_expired_token_is_refused(api_client, alice):
    token = login(api_client).json()["token"]
    ApiToken.objects.filter(user=alice).update(expiry=timezone.now() - timedelta(seconds=1))

    response = with_token(token).get("/api/v1/orders/")

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "authentication_failed"


def test_logout_revokes_the_token_used(api_client, alice):
    token, other = login(api_client).json()["token"], login(api_client).json()["token"]

    response = with_token(token).post("/api/v1/auth/logout/")

    assert response.status_code == 204
    assert with_token(token).get("/api/v1/orders/").status_code == 401
    assert with_token(other).get("/api/v1/orders/").status_code == 200  # another client's stays


def test_a_password_change_revokes_every_token(api_client, alice):
    token = login(api_client).json()["token"]

    alice.set_password("another-long-pass-for-tests")
    alice.save()

    assert with_token(token).get("/api/v1/orders/").status_code == 401
    assert login(api_client, password="another-long-pass-for-tests").status_code == 200


def test_a_password_changed_in_the_admin_revokes_tokens_too(api_client, alice, client: Client):
    token = login(api_client).json()["token"]
    client.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))

    response = client.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": "third-long-pass-for-tests", "password2": "third-long-pass-for-tests"},
    )

    assert response.status_code == 302
    assert with_token(token).get("/api/v1/orders/").status_code == 401


def test_wrong_credentials_are_a_400_and_issue_nothing(api_client, alice):
    response = login(api_client, password="wrong")

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_the_token_endpoint_takes_json_only(api_client, alice):
    response = api_client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": PASSWORD, "file": b"x" * 1000}, format="multipart"
    )

    assert response.status_code == 415
    assert not ApiToken.objects.exists()


def test_the_admin_lists_token_holders_but_no_token_nor_digest(api_client, alice, client: Client):
    token = login(api_client).json()["token"]
    digest = ApiToken.objects.get(user=alice).digest
    client.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))

    page = client.get("/admin/core/apitoken/").content.decode()
    detail = client.get(f"/admin/core/apitoken/{digest}/change/").content.decode()

    assert "alice" in page
    for text in (page, detail):
        assert token not in text and token[:15] not in text
        # the digest (one-way) is the row's id in links, never shown as the token's name
        assert f"{digest} :" not in text
    assert client.get("/admin/core/apitoken/add/").status_code == 403


def test_expired_tokens_are_pruned(api_client, alice):
    login(api_client)
    login(api_client)
    ApiToken.objects.filter(pk=ApiToken.objects.first().pk).update(expiry=timezone.now() - timedelta(days=1))

    assert api_token_prune() == 1
    assert ApiToken.objects.count() == 1
