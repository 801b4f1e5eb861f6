import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError as DatabaseError
from kombu.exceptions import OperationalError as BrokerError
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_unknown_api_path_is_a_json_404(api_client):
    response = api_client.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {
        "type": "client_error",
        "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}],
    }


def test_anonymous_request_is_a_json_401(api_client):
    response = api_client.get("/api/v1/orders/")

    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "client_error"
    assert body["errors"][0]["code"] == "not_authenticated"


def test_token_endpoint_returns_a_token_for_valid_credentials(api_client):
    get_user_model().objects.create_user("alice", password="s3cret-pass")

    response = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "s3cret-pass"}, format="json")
    bad = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")

    assert response.status_code == 200
    assert len(response.json()["token"]) == 64
    assert bad.status_code == 400
    assert bad.json()["type"] == "validation_error"


def test_openapi_schema_and_docs_are_served_without_external_assets(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = api_client.get("/api/docs/")

    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr.net" not in html
    assert "/static/drf_spectacular_sidecar/" in html


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (DatabaseError("connection refused"), "postgresql"),
        (BrokerError("broker gone"), "rabbitmq"),
    ],
)
def test_an_unreachable_dependency_is_a_json_503_naming_it(monkeypatch, error, name):
    import inventory.apis

    def unavailable():
        raise error

    monkeypatch.setattr(inventory.apis, "product_list", unavailable)
    user = get_user_model().objects.create_user("bob", password="pw-for-tests")
    api_client = APIClient(raise_request_exception=False)
    api_client.force_authenticate(user)

    response = api_client.get("/api/v1/products/")

    assert response.status_code == 503
    assert response.json() == {
        "type": "server_error",
        "errors": [
            {"code": "service_unavailable", "detail": f"{name} is unavailable; try again shortly.", "attr": None}
        ],
    }
