"""The flow tests' system (gunicorn and Celery workers) with every database connection through
a real PgBouncer in transaction pooling mode, in front of the test database.

The web and worker processes of this package connect to PgBouncer, which shares a few server
connections among all of them (``POOL_SIZE``, fewer than the processes), so whatever one of them
left on a session would be met by another. The test process itself still talks to PostgreSQL
directly (to set up data and check outcomes). While this package runs, the suite's own workers,
which connect directly, are stopped, so that every task here is worked on through PgBouncer.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests import faults, processes
from tests.conftest import ROOT, flow_env
from tests.reliability.services import PGBOUNCER, PrivatePgBouncer

# Server connections PgBouncer keeps to PostgreSQL, shared by gunicorn's 2 workers, the worker
# processes (2 or 4 pool processes and their main processes) and beat-less flows.
POOL_SIZE = 3


def pgbouncer_installed() -> None:
    """Install Debian's pgbouncer if it is missing (scripts/pgbouncer.sh; needs root or sudo then)."""
    if PGBOUNCER.exists():
        return
    done = subprocess.run(["bash", str(ROOT / "scripts" / "pgbouncer.sh")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"scripts/pgbouncer.sh failed:\n{done.stdout}{done.stderr}"


def start_pgbouncer(*, pool_size: int) -> PrivatePgBouncer:
    pgbouncer_installed()
    db = settings.DATABASES["default"]
    return PrivatePgBouncer(
        upstream_host=db["HOST"] or "127.0.0.1",
        upstream_port=int(db["PORT"] or 5432),
        database=db["NAME"],
        pool_size=pool_size,
    ).start()


@pytest.fixture(scope="package")
def pgbouncer(django_db_setup: None) -> Iterator[PrivatePgBouncer]:
    bouncer = start_pgbouncer(pool_size=POOL_SIZE)
    yield bouncer
    bouncer.destroy()


@pytest.fixture(scope="package")
def worker_mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mailbox of this package's own: the flows here send the same e-mails as the ones they repeat."""
    return tmp_path_factory.mktemp("pgbouncer-mail")


@pytest.fixture(scope="package")
def service_env(pgbouncer: PrivatePgBouncer, worker_mail_dir: Path) -> dict[str, str]:
    """The flow tests' environment, with the database reached through PgBouncer."""
    return flow_env(database_url=pgbouncer.url(), mail_dir=worker_mail_dir)


@pytest.fixture(scope="package")
def without_direct_workers(broker_topology: None) -> Iterator[None]:
    """Stop the suite's workers (they connect to PostgreSQL directly) while this package runs."""
    stopped = [process for process in processes.RUNNING if isinstance(process, processes.Worker)]
    for worker in stopped:
        worker.stop()
    yield
    for worker in stopped:
        worker.start()


@pytest.fixture(scope="package")
def live_worker(
    service_env: dict[str, str], without_direct_workers: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Worker]:
    worker = processes.Worker(service_env, log_dir=tmp_path_factory.mktemp("pgbouncer-worker"), name="bounced")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="package")
def live_web(
    service_env: dict[str, str], broker_topology: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gunicorn]:
    web = processes.Gunicorn(
        service_env, log_dir=tmp_path_factory.mktemp("pgbouncer-web"), port=faults.free_port(), workers=2
    )
    web.start()
    yield web
    web.stop()


@pytest.fixture
def process_factory(
    service_env: dict[str, str], without_direct_workers: None, tmp_path
) -> Iterator[processes.ProcessFactory]:
    factory = processes.ProcessFactory(service_env, tmp_path)
    yield factory
    factory.stop_all()
