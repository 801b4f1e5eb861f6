"""Password guessing: failed logins of the API and the admin are counted per username and per
client address (django-axes); past the limit the login is refused with 429 and Retry-After,
before any password is checked, and logged."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory, override_settings
from rest_framework.test import APIClient

from core.lockout import client_ip_address
from core.models import ApiToken

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-pass-for-tests"
LIMIT = 3


@pytest.fixture(autouse=True)
def small_limit():
    with override_settings(AXES_FAILURE_LIMIT=LIMIT):
        yield


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


def api_login(username: str, password: str, address: str = "203.0.113.5"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_guessing_a_password_ends_in_429_with_retry_after_even_for_the_right_one(alice, caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(LIMIT - 1):
        assert api_login("alice", "wrong").status_code == 400
    assert api_login("alice", "wrong").status_code == 429  # the failure that reaches the limit

    response = api_login("alice", PASSWORD)

    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "too_many_login_failures"
    assert int(response["Retry-After"]) == 15 * 60
    assert not ApiToken.objects.exists()
    assert any("Login refused (locked out)" in r.getMessage() and "alice" in r.getMessage() for r in caplog.records)
    assert any("AXES" in r.getMessage() for r in caplog.records)  # each failure is logged too


def test_a_username_is_locked_whatever_address_the_guesses_come_from(alice):
    for n in range(LIMIT):
        api_login("alice", "wrong", address=f"198.51.100.{n + 1}")

    assert api_login("alice", PASSWORD, address="198.51.100.200").status_code == 429


def test_an_address_is_locked_whatever_usernames_it_tries(alice):
    for n in range(LIMIT):
        api_login(f"someone{n}", "wrong", address="192.0.2.7")

    assert api_login("alice", PASSWORD, address="192.0.2.7").status_code == 429
    assert api_login("alice", PASSWORD, address="192.0.2.8").status_code == 200  # another address


def test_a_successful_login_resets_the_count(alice):
    for _ in range(LIMIT - 1):
        api_login("alice", "wrong")
    assert api_login("alice", PASSWORD).status_code == 200

    for _ in range(LIMIT - 1):
        api_login("alice", "wrong")
    assert api_login("alice", PASSWORD).status_code == 200


def test_the_admin_login_is_locked_out_too(alice):
    alice.is_staff = True
    alice.save()
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert "Retry-After" in response
    assert "_auth_user_id" not in client.session


def test_api_and_admin_failures_count_together(alice):
    for _ in range(LIMIT - 1):
        api_login("alice", "wrong")
    Client(REMOTE_ADDR="203.0.113.5").post("/admin/login/", {"username": "alice", "password": "wrong"})

    assert api_login("alice", PASSWORD).status_code == 429


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "1.2.3.4", "10.0.0.1"),  # no trusted proxy: the header is the client's word, ignored
        (1, "1.2.3.4", "1.2.3.4"),
        (1, "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # what the client wrote itself is left of it
        (2, "6.6.6.6, 1.2.3.4, 10.0.0.9", "1.2.3.4"),
        (2, "1.2.3.4", "10.0.0.1"),  # fewer entries than proxies: not trusted
    ],
)
def test_the_client_address_trusts_only_the_proxies_configured(proxies, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        assert client_ip_address(request) == expected


def test_failed_logins_are_recorded_without_the_password_tried(alice):
    from axes.models import AccessAttempt

    Client(REMOTE_ADDR="203.0.113.9").post("/admin/login/", {"username": "alice", "password": "guess-one-secret"})
    api_login("alice", "guess-two-secret")

    recorded = " ".join(f"{a.get_data} {a.post_data} {a.username}" for a in AccessAttempt.objects.all())
    assert "alice" in recorded
    assert "guess-one-secret" not in recorded and "guess-two-secret" not in recorded
