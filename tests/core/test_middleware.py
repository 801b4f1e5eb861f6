"""Sessions and messages for browsers only (core.middleware.BrowserSessionMiddleware); CSRF for
session-authenticated requests."""

from __future__ import annotations

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from rest_framework.test import APIClient

from tests.factories import StaffFactory, UserFactory, make_product, token_for

pytestmark = pytest.mark.django_db


def order_body() -> dict:
    return {"items": [{"sku": make_product(stock=5).sku, "quantity": 1}]}


def test_a_token_request_skips_sessions_and_messages():
    customer = UserFactory()
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(customer)}")

    response = client.post("/api/v1/orders/", order_body(), format="json")

    assert response.status_code == 202
    request = response.wsgi_request
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    assert "Set-Cookie" not in response.headers


def test_a_token_request_with_a_session_cookie_needs_no_csrf_token():
    # given a browser that is logged in to the admin and also sends its API token
    customer = UserFactory()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(customer)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(customer)}")

    # when it posts without a CSRF token, the token authenticates it
    assert client.post("/api/v1/orders/", order_body(), format="json").status_code == 202


def test_a_session_authenticated_unsafe_request_needs_the_csrf_token():
    customer = UserFactory()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(customer)

    refused = client.post("/api/v1/orders/", order_body(), format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.content.decode()

    client.get("/api/v1/orders/", HTTP_ACCEPT="text/html")  # the browsable API sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/orders/", order_body(), format="json", HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 202


def test_the_session_user_is_read_by_the_browsable_api():
    customer = UserFactory()
    client = APIClient()
    client.force_login(customer)
    response = client.get("/api/v1/orders/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert customer.username in response.content.decode()


def test_the_admin_login_form_is_protected_by_csrf_and_logs_in_with_it():
    staff = StaffFactory(password="pass-for-tests")
    client = Client(enforce_csrf_checks=True)

    assert client.post("/admin/login/", {"username": staff.username, "password": "pass-for-tests"}).status_code == 403

    client.get("/admin/login/")
    csrf = client.cookies["csrftoken"].value
    form = {"username": staff.username, "password": "pass-for-tests", "csrfmiddlewaretoken": csrf}
    assert client.post("/admin/login/?next=/admin/", form).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_admin_shows_its_messages():
    client = Client()
    client.force_login(StaffFactory(is_superuser=True))
    product = make_product(stock=5)
    response = client.post(
        f"/admin/inventory/product/{product.pk}/adjust-stock/", {"delta": 2, "reason": "delivery"}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == [f"Stock of {product.sku} adjusted by +2: now 7."]


def plain_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("changed")


# The URLconf of the test below: a plain Django view, which relies on the CSRF middleware (the
# admin's and DRF's views check CSRF themselves).
urlpatterns = [path("plain/", plain_view)]


@override_settings(ROOT_URLCONF=__name__)
def test_a_plain_django_view_refuses_a_session_post_without_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())
    assert client.post("/plain/").status_code == 403
    assert client.get("/plain/").status_code == 200
