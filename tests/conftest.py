"""Fixtures shared by the whole suite.

Flow tests run against the real services: the test database that pytest-django creates, the
``orders_test`` virtual host of the local RabbitMQ and Redis database 1. ``live_worker`` starts
real ``celery -A config worker`` processes pointed at them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from pytest_django import DjangoDbBlocker
from rest_framework.test import APIClient

from inventory.stock_marks import stock_marks_clear
from orders.cache import orders_cache_clear
from orders.reservation_requests import reservation_requests_taken
from tests import faults, processes
from tests.factories import OperatorFactory, UserFactory, token_for
from tests.notifications.receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent

# Worker settings for flow tests: notifications give up after 3 attempts, 1-2 s apart; a
# test-only task module (poison messages, failing tasks) is loaded. Every worker of the run gets
# them, because workers share the queues: a task may land on any of them.
FLOW_WORKER_ENV = {
    "NOTIFY_MAX_RETRIES": "3",
    "NOTIFY_BACKOFF_BASE_SECONDS": "1",
    "NOTIFY_BACKOFF_MAX_SECONDS": "2",
    # Sends to the suite's local receivers take milliseconds: a copy of a message whose worker was
    # killed, or whose broker node went down, mid-send sends once this lease has run out.
    "NOTIFY_SEND_LEASE_SECONDS": "10",
    # ... which the send tasks' limits and one webhook attempt's deadline must stay under.
    "WEBHOOK_DEADLINE_SECONDS": "2",
    "NOTIFY_SEND_SOFT_TIME_LIMIT_SECONDS": "6",
    "NOTIFY_SEND_TIME_LIMIT_SECONDS": "8",
    # An open circuit probes after 2 s, then 4 s (the default threshold of 5 failures stays).
    "WEBHOOK_CIRCUIT_COOLDOWN_SECONDS": "2",
    "WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS": "4",
    "TEST_CELERY_IMPORTS": "tests.flows.poison_tasks",
    "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
}


@pytest.fixture(autouse=True)
def _no_cached_copies_of_earlier_tests() -> None:
    """Product and order ids start again with each test database, and each test's products at
    stock version 0: copies that earlier tests left in Redis could look newer than theirs. A
    reservation mark an earlier test left would keep this test's first order from sending its
    reservation task."""
    with contextlib.suppress(Exception):  # a test may run without Redis
        stock_marks_clear()
        orders_cache_clear()
        reservation_requests_taken()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    """``client_for(user)``: an API client that sends ``user``'s token, as a real client does."""

    def authenticated(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
        return client

    return authenticated


@pytest.fixture
def customer() -> User:
    return UserFactory.create()


@pytest.fixture
def staff() -> User:
    """Staff with the permissions of every staff action (core/permissions.py)."""
    return OperatorFactory.create()


@pytest.fixture(scope="session")
def worker_mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where worker processes write the e-mails they send (Django's file-based backend)."""
    return tmp_path_factory.mktemp("mail")


def flow_env(*, database_url: str, mail_dir: Path) -> dict[str, str]:
    """Environment for child processes (workers, gunicorn) of the flow tests."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        **FLOW_WORKER_ENV,
        "EMAIL_FILE_PATH": str(mail_dir),
    }


@pytest.fixture(scope="session")
def service_env(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest, worker_mail_dir: Path
) -> dict[str, str]:
    """Environment for child processes (workers, gunicorn) that share the test database."""
    db = settings.DATABASES["default"]
    return flow_env(
        database_url=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}", mail_dir=worker_mail_dir
    )


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


@pytest.fixture
def dead_letter_queues_empty(broker_topology: None) -> None:
    """Start a test with empty dead-letter queues (earlier tests may have left dead letters)."""
    processes.purge_dead_letter_queues()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def second_webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def no_publishing_outside_flow_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only flow tests publish to RabbitMQ; in the others, what commits stays in the outbox.

    A message published by another test would be worked on by a flow test's worker while the
    test database is being flushed, and the flush and the worker's transaction can deadlock.
    """
    if request.node.get_closest_marker("flow") is None:
        monkeypatch.setattr("core.outbox._publish_after_commit", lambda *publish: None)


@pytest.fixture(scope="session", autouse=True)
def readiness_connections_closed(django_db_setup: None) -> Iterator[None]:
    """A /readyz answered in this process leaves its checks' connections open (that is their
    point); close them before the test database is dropped, which open connections prevent."""
    yield
    from core.health import readiness_reset

    readiness_reset()


@pytest.fixture(scope="session", autouse=True)
def activity_counts_written(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """Sold-out refusals counted in this process are written when it exits; write them before
    the test database, and their table, are dropped."""
    yield
    from orders.activity import activity_flush

    with django_db_blocker.unblock():
        activity_flush()
