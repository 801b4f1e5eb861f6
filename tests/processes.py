"""Real processes for flow tests: Celery workers and beat, and gunicorn, started and stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

import httpx
from kombu import Connection

from config import queues
from config.celery_app import app
from tests.faults import free_port

ROOT = Path(__file__).resolve().parent.parent

# Every process started by the suite and not yet stopped, so a test can set aside the shared ones.
RUNNING: set[Process] = set()

# Prefix for every command the suite starts: the process gets SIGTERM when the test run that
# started it dies, even by SIGKILL. Without it, a worker of an interrupted run would live on in a
# session of its own and take the next run's messages from the test virtual host.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"]


def collect_static(env: dict[str, str]) -> None:
    """``manage.py collectstatic`` into ``env["DJANGO_STATIC_ROOT"]``, for a gunicorn serving the admin."""
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr


def reset_broker() -> None:
    """Declare every queue of the test virtual host, make sure no one else consumes, and purge them."""
    with Connection(app.conf.broker_url) as conn:
        queues.declare_topology(conn)
        channel = conn.default_channel

        def strangers() -> dict[str, int]:
            inspect: Any = conn.default_channel  # queue_declare answers (name, messages, consumers)
            counts = {queue.name: inspect.queue_declare(queue.name, passive=True)[2] for queue in queues.WORK_QUEUES}
            return {name: count for name, count in counts.items() if count}

        # A consumer before the run's own workers start belongs to another run: it would take this
        # run's messages and work on them with its own code and settings. One that is shutting down
        # goes away within seconds.
        try:
            wait_until(lambda: not strangers(), timeout=30, interval=1, message="no consumers")
        except AssertionError:
            raise AssertionError(
                f"other processes consume from the test virtual host ({strangers()} consumers by queue): "
                "stop the workers of the other test run first"
            ) from None
        for queue in (*queues.WORK_QUEUES, *queues.DEAD_LETTER_QUEUES):
            queue.bind(channel).purge()
        # Retries waiting in Celery's delayed-delivery queues from an earlier run, if any.
        for level in range(28):
            delayed: Any = conn.channel()  # a missing queue closes the channel that asked for it
            with contextlib.suppress(Exception):
                delayed.queue_purge(f"celery_delayed_{level}")
            with contextlib.suppress(Exception):
                delayed.close()


def purge_dead_letter_queues() -> None:
    with Connection(app.conf.broker_url) as conn:
        queues.declare_dead_letter_topology(conn)
        channel = conn.default_channel
        for queue in queues.DEAD_LETTER_QUEUES:
            queue.bind(channel).purge()


HEARTBEAT_TASK = "core.tasks.worker_heartbeat_task"  # harmless wherever it runs


def dead_letter_to(queue: str, *, task: str = HEARTBEAT_TASK, args: list[Any] | None = None) -> str:
    """Put a task message straight into ``queue``'s dead-letter queue, as a rejection would; returns its id."""
    with app.connection_for_write() as connection:
        queues.declare_dead_letter_topology(connection)
    args = args if args is not None else [str(uuid.uuid4())]
    result = app.send_task(task, args=args, exchange=queues.DEAD_LETTER_EXCHANGE.name, routing_key=queue)
    return str(result.id)


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
            [*DIE_WITH_PARENT, *self.argv],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        RUNNING.add(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        # SIGTERM to the main process only, as a supervisor should send it: Celery's warm shutdown
        # and gunicorn's graceful stop finish the work in hand. Sent to the whole group, it would
        # also reach the pool processes and interrupt their tasks mid-transaction.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # anything of its group still left
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
        self.proc = None
        RUNNING.discard(self)


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
        args: list[str] | None = None,
    ) -> None:
        argv = [
            "celery", "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
            "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle", *(args or []),
        ]  # fmt: skip
        super().__init__(argv, {**env, **(extra_env or {})}, log_dir / f"{name}.log")

    def start(self, timeout: float = 60) -> None:
        # A restarted worker appends to the same log: wait for a new "ready", not the last run's.
        readies = self.log().count(" ready.") if self.log_path.exists() else 0
        super().start()
        wait_until(lambda: self.log().count(" ready.") > readies, timeout=timeout, message="the worker to be ready")

    def metrics_url(self) -> str:
        """Where this worker serves its metrics (the port it logged; WORKER_METRICS_PORT=0 in tests)."""
        found = wait_until(
            lambda: re.findall(r"Worker metrics at (http://\S+/metrics)", self.log()),
            timeout=30,
            message="the worker's metrics endpoint",
        )
        return found[-1]  # the log file is appended to across restarts

    def runs(self, task: str, task_id: str = "") -> int:
        """How many times this worker logged task ``task`` (with id ``task_id``, if given) as finished."""
        prefix = f"Task {task}[{task_id}"
        return sum(1 for line in self.log().splitlines() if prefix in line and "] succeeded in " in line)


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


class Beat(Process):
    """``celery -A config beat`` with its schedule file in ``log_dir``."""

    def __init__(self, env: dict[str, str], *, log_dir: Path, name: str = "beat") -> None:
        argv = [
            "celery", "-A", "config", "beat", "--loglevel", "INFO",
            "--schedule", str(log_dir / f"{name}-schedule"),
        ]  # fmt: skip
        super().__init__(argv, env, log_dir / f"{name}.log")

    def start(self, timeout: float = 60) -> None:
        super().start()
        wait_until(lambda: "beat: Starting" in self.log(), timeout=timeout, message="beat to start")


class ProcessFactory:
    """Starts extra workers, beats and gunicorns for one test, with extra environment; stops them all."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[Process] = []

    def _start(self, process: Process) -> None:
        self.started.append(process)
        process.start()

    def worker(
        self, *, name: str, concurrency: int = 2, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> Worker:
        worker = Worker(
            {**self.env, **(env or {})}, log_dir=self.log_dir, concurrency=concurrency, name=name, args=args
        )
        self._start(worker)
        return worker

    def beat(self, *, env: dict[str, str] | None = None, name: str = "beat") -> Beat:
        beat = Beat({**self.env, **(env or {})}, log_dir=self.log_dir, name=name)
        self._start(beat)
        return beat

    def web(self, *, workers: int = 2, env: dict[str, str] | None = None) -> Gunicorn:
        web = Gunicorn({**self.env, **(env or {})}, log_dir=self.log_dir, port=free_port(), workers=workers)
        self._start(web)
        return web

    def stop_all(self) -> None:
        while self.started:  # last started, first stopped
            self.started.pop().stop()


def drain_task_ids(queue_name: str) -> list[str]:
    """Take every ready message off a queue and return the Celery task id of each, in order."""
    task_ids: list[str] = []
    with Connection(app.conf.broker_url) as conn:
        queue = next(q for q in queues.WORK_QUEUES if q.name == queue_name).bind(conn.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            task_ids.append(message.headers["id"])
    return task_ids


def purge_queue(queue_name: str) -> None:
    with Connection(app.conf.broker_url) as conn:
        queue = next(q for q in queues.WORK_QUEUES if q.name == queue_name)
        queue.bind(conn.default_channel).purge()
