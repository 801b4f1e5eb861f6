"""/healthz and /readyz against the real services; a stopped PostgreSQL and RabbitMQ are in
tests/reliability/test_faults.py (private instances, really stopped)."""

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from core import health

pytestmark = pytest.mark.django_db

SERVICE_PORTS = {5432, 6379, 5672}


@pytest.fixture(autouse=True)
def fresh_readiness():
    health.readiness_reset()
    yield
    health.readiness_reset()


@pytest.fixture
def uncached(monkeypatch):
    """Every probe takes a new reading (no result kept between probes)."""
    monkeypatch.setattr(health, "CACHE_SECONDS", 0.0)


def service_connections() -> set[tuple[int, int]]:
    """(local port, remote port) of this process's TCP connections to the services' standard ports."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            remote_port = int(remote.rsplit(":", 1)[1], 16)
            if inode in inodes and state == "01" and remote_port in SERVICE_PORTS:  # 01: established
                found.add((int(local.rsplit(":", 1)[1], 16), remote_port))
    return found


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_every_service_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "postgresql": "ok",
        "redis": "ok",
        "rabbitmq": "ok",
    }
    assert body["checks"]["postgresql"]["required"] is True


@override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
def test_a_stopped_rabbitmq_leaves_the_process_ready_and_is_named(client):
    # given nothing listens where the broker should be
    response = client.get("/readyz")

    # then the process still takes orders (the outbox keeps them): 200, degraded, naming it
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "degraded"
    assert body["down"] == ["rabbitmq"]
    assert body["checks"]["rabbitmq"]["status"] == "unavailable"


def test_a_stopped_redis_leaves_the_process_ready_and_is_named(client):
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=unreachable):
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["down"] == ["redis"]


def test_a_hanging_postgresql_check_answers_503_within_a_second_and_runs_once(client, uncached, monkeypatch):
    # given a PostgreSQL check that hangs (a server that accepts but never answers)
    started = []
    release = threading.Event()

    def hanging() -> None:
        started.append(time.monotonic())
        release.wait(10)

    postgresql = health.Dependency("postgresql", hanging, required=True)
    monkeypatch.setattr(health, "DEPENDENCIES", (postgresql, *health.DEPENDENCIES[1:]))
    try:
        # when three probes arrive one after another
        timings, answers = [], []
        for _ in range(3):
            before = time.monotonic()
            answers.append(client.get("/readyz"))
            timings.append(time.monotonic() - before)
    finally:
        release.set()

    # then each answers 503 within the second, naming PostgreSQL as timed out
    assert [answer.status_code for answer in answers] == [503, 503, 503]
    assert max(timings) < 1.0, timings
    assert answers[0].json()["status"] == "unavailable"
    assert answers[0].json()["checks"]["postgresql"] == {"status": "unavailable", "required": True, "error": "timeout"}
    # and the hanging check was started once: later probes waited for it instead of piling up
    assert len(started) == 1


def test_probes_in_a_row_share_one_reading(client, monkeypatch):
    calls = []
    counting = health.Dependency("redis", lambda: calls.append(1), required=False)
    monkeypatch.setattr(health, "DEPENDENCIES", (health.DEPENDENCIES[0], counting, health.DEPENDENCIES[2]))

    for _ in range(20):
        assert client.get("/readyz").status_code == 200

    assert len(calls) == 1  # within CACHE_SECONDS every probe after the first reads the result


def test_a_probe_storm_opens_no_new_connection(client, uncached, monkeypatch):
    # given a first probe, which connects to each service once
    assert client.get("/readyz").json()["status"] == "ok"
    connected = service_connections()
    assert {remote for _, remote in connected} >= SERVICE_PORTS
    # (Redis and RabbitMQ clients connect through Python sockets: count every connect to them)
    opened: list[object] = []
    connect = socket.socket.connect

    def counting_connect(sock: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[1] in SERVICE_PORTS:
            opened.append(address)
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", counting_connect)

    # when 30 more probes each take a new reading
    for _ in range(30):
        assert client.get("/readyz").json()["status"] == "ok"

    # then they all went over the connections already open, and none was opened and closed
    assert opened == []
    assert service_connections() == connected
