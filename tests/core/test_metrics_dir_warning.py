"""gunicorn warns at start-up when several workers would each count their metrics alone."""

from pathlib import Path

import httpx
import pytest

from tests.faults import free_port
from tests.processes import Process, wait_until

pytestmark = pytest.mark.django_db

WARNING = "without a metrics directory"


def start_gunicorn(env: dict[str, str], log_dir: Path, *options: str) -> str:
    """Start gunicorn with ``options``, wait until its workers answer; returns its log."""
    port = free_port()
    argv = ["gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--no-control-socket", *options]
    web = Process(argv, env, log_dir / f"gunicorn-{port}.log")
    web.start()
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=60, message="gunicorn to answer")
        # every worker has loaded the application (and logged what it had to say) once it booted
        wait_until(lambda: web.log().count("Booting worker") >= 1, timeout=30, message="workers booted")
        return web.log()
    finally:
        web.stop()


@pytest.fixture
def other_config(tmp_path: Path) -> str:
    """A gunicorn configuration file that is not the repository's (so no metrics directory)."""
    path = tmp_path / "other.conf.py"
    path.write_text("# a deployment's own settings, without the metrics directory\n")
    return str(path)


def test_two_workers_without_the_metrics_directory_are_warned_about(service_env, tmp_path, other_config):
    log = start_gunicorn(service_env, tmp_path, "--config", other_config, "--workers", "2")

    assert WARNING in log
    assert "gunicorn.conf.py" in log  # and it says what to do


def test_one_worker_without_the_metrics_directory_is_fine(service_env, tmp_path, other_config):
    log = start_gunicorn(service_env, tmp_path, "--config", other_config, "--workers", "1")

    assert WARNING not in log


def test_the_repository_configuration_makes_the_directory_and_no_warning(service_env, tmp_path):
    log = start_gunicorn(service_env, tmp_path, "--workers", "2")

    assert WARNING not in log
