"""Fixtures shared by the whole suite.

Flow tests run against the real services: the test database that pytest-django creates, the
``orders_test`` virtual host of the local RabbitMQ and Redis database 1. ``live_worker`` starts
real ``celery -A config worker`` processes pointed at them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests import faults, processes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def service_env(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> dict[str, str]:
    """Environment for child processes (workers, gunicorn) that share the test database."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    return env


@pytest.fixture(scope="session")
def broker_topology() -> None:
    """Declare the queues in the test virtual host and empty them once per run."""
    processes.reset_broker()


@pytest.fixture(scope="session")
def live_worker(service_env: dict[str, str], broker_topology: None, tmp_path_factory) -> Iterator[processes.Worker]:
    worker = processes.Worker(service_env, log_dir=tmp_path_factory.mktemp("worker"))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def live_web(service_env: dict[str, str], broker_topology: None, tmp_path_factory) -> Iterator[processes.Gunicorn]:
    """A real gunicorn with two worker processes serving the API on an ephemeral port."""
    web = processes.Gunicorn(service_env, log_dir=tmp_path_factory.mktemp("web"), port=faults.free_port(), workers=2)
    web.start()
    yield web
    web.stop()


@pytest.fixture
def process_factory(
    service_env: dict[str, str], broker_topology: None, tmp_path: Path
) -> Iterator[processes.ProcessFactory]:
    """Start extra workers, beats or gunicorns for one test (with extra environment); stopped after it."""
    factory = processes.ProcessFactory(service_env, tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def without_shared_workers() -> Iterator[None]:
    """Stop the session's workers for one test (so only the test's own processes consume), then restart them."""
    stopped = [process for process in processes.RUNNING if isinstance(process, processes.Worker)]
    for worker in stopped:
        worker.stop()
    yield
    for worker in stopped:
        worker.start()
