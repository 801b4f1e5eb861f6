import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_every_service_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"postgresql": "ok", "redis": "ok", "rabbitmq": "ok"}


@override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
def test_readyz_names_a_stopped_rabbitmq(client):
    # given nothing listens where the broker should be
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["down"] == ["rabbitmq"]


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_readyz_names_a_stopped_redis(client):
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["down"] == ["redis"]
