"""Real processes for flow tests: Celery workers and gunicorn, started and stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import httpx
from kombu import Connection

from config import queues
from config.celery_app import app

ROOT = Path(__file__).resolve().parent.parent


def reset_broker() -> None:
    """Declare every queue of the test virtual host and purge them."""
    with Connection(app.conf.broker_url) as conn:
        queues.declare_topology(conn)
        channel = conn.default_channel
        for queue in (*queues.WORK_QUEUES, *queues.DEAD_LETTER_QUEUES):
            queue.bind(channel).purge()


def purge_dead_letter_queues() -> None:
    with Connection(app.conf.broker_url) as conn:
        queues.declare_dead_letter_topology(conn)
        channel = conn.default_channel
        for queue in queues.DEAD_LETTER_QUEUES:
            queue.bind(channel).purge()


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class Process:
    """A child process in its own process group, logging to a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
        self.proc = None


class Worker(Process):
    """``celery -A config worker`` consuming every queue, with a prefork pool."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        log_dir: Path,
        concurrency: int = 2,
        name: str = "w1",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        argv = [
            "celery", "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
            "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        super().__init__(argv, {**env, **(extra_env or {})}, log_dir / f"{name}.log")

    def start(self, timeout: float = 60) -> None:
        super().start()
        wait_until(lambda: " ready." in self.log(), timeout=timeout, message="the worker to be ready")


class Gunicorn(Process):
    def __init__(self, env: dict[str, str], *, log_dir: Path, port: int, workers: int = 2) -> None:
        argv = [
            "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--access-logfile", "-",
        ]  # fmt: skip
        super().__init__(argv, env, log_dir / f"gunicorn-{port}.log")
        self.base_url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 60) -> None:
        super().start()

        def up() -> bool:
            try:
                return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=timeout, message="gunicorn to answer")
