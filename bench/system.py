"""The system under benchmark: its environment, database, broker and processes.

Production settings (``config.settings.bench`` extends them with the baseline views), its own
database ``orders_bench`` (recreated per run) and RabbitMQ virtual host ``orders_bench``
(created by scripts/services.sh, emptied per run); ``BENCH_DATABASE`` and ``BENCH_VHOST`` name
others. gunicorn serves ``bench.wsgi``: the project, plus the bare baselines under ``/bare/``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Another name when several copies of the project share the machine's services.
BENCH_DB = os.environ.get("BENCH_DATABASE", "orders_bench")
BENCH_VHOST = os.environ.get("BENCH_VHOST", "orders_bench")
LOG_DIR = ROOT / ".run" / "bench"
# Every process the benchmark starts gets SIGTERM when the benchmark dies, even by SIGKILL.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"]


def prepare_environment() -> None:
    """Production settings and the bench database and virtual host, for this process and its children."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.bench"
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
    os.environ.setdefault("PAYMENT_WEBHOOK_SECRET", "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("METRICS_TOKEN", secrets.token_urlsafe(32))
    # One benchmark customer places every order: no cap on their open orders.
    os.environ["ORDER_MAX_OPEN_PER_CUSTOMER"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Plain HTTP from the load generator, as from a load balancer that terminated TLS.
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "false"
    # One customer sends every order: the per-user rate limit would measure the limit, not the service.
    os.environ["ORDER_CREATE_RATE"] = ""
    # The worker really sends the order e-mails, to a backend that drops them (no SMTP server here).
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.dummy.EmailBackend"
    # The webhook benchmark's merchant endpoints listen on loopback (config/settings/bench.py).
    os.environ["BENCH_WEBHOOKS_TO_LOOPBACK"] = "true"
    # The admin's pages (measured by the growth benchmark) need the collected static files' manifest.
    os.environ["DJANGO_STATIC_ROOT"] = str(LOG_DIR / "static")
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
    os.environ["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{BENCH_VHOST}"
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def recreate_database() -> None:
    for sql in (f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)', f'CREATE DATABASE "{BENCH_DB}"'):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True, capture_output=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def collect_static() -> None:
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, check=True)


def empty_queues() -> None:
    from amqp.exceptions import NotFound
    from kombu import Connection
    from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name

    from bench.views import BENCH_QUEUE
    from config import queues

    with Connection(os.environ["CELERY_BROKER_URL"]) as connection:
        queues.declare_topology(connection)
        for queue in (*queues.WORK_QUEUES, *queues.DEAD_LETTER_QUEUES, BENCH_QUEUE):
            queue.bind(connection.default_channel).declare()
            queue.bind(connection.default_channel).purge()
        # Retries and waits of an earlier run, still counting down: they would arrive in this one
        # and act on its rows (the database is recreated, ids start again).
        # (A level not declared yet, before any worker started, has nothing waiting.)
        for level in range(MAX_LEVEL + 1):
            with contextlib.suppress(NotFound), connection.channel() as channel:
                channel.queue_purge(level_name(level))  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (the state is the first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Which part of the stack a process belongs to: the first whose marker is in its command line.
COMPONENTS = (
    ("web", "gunicorn"),
    ("worker", "celery"),  # worker and beat
    ("PostgreSQL", "postgres"),
    ("RabbitMQ", "beam.smp"),
    ("RabbitMQ", "erl_child_setup"),
    ("RabbitMQ", "inet_gethost"),
    ("Redis", "redis-server"),
)


def cpu_by_component() -> dict[str, float]:
    """CPU seconds used so far by each part of the stack on this machine (``COMPONENTS``).

    A process counts its own time and that of its children that have ended, so the time of a
    PostgreSQL backend that ends between two readings is not lost: the difference of two
    readings is what each part used in between.
    """
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = _stat_fields(entry.name)
        except OSError:  # ended meanwhile
            continue
        name = next((name for name, marker in COMPONENTS if marker in command), None)
        if name is not None:
            used[name] = used.get(name, 0.0) + sum(int(f) for f in fields[11:15]) / tick
    return used


@dataclass
class System:
    """gunicorn, Celery worker and beat, as the README's production commands start them."""

    web_workers: int
    worker_concurrency: int
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def commands(self) -> dict[str, list[str]]:
        bin_dir = Path(sys.executable).parent
        return {
            "web": [
                str(bin_dir / "gunicorn"), "bench.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.web_workers),
                "--no-control-socket", "--graceful-timeout", "10",
            ],
            "worker": [
                str(bin_dir / "celery"), "-A", "config", "--quiet", "worker", "--loglevel", "WARNING",
                "--concurrency", str(self.worker_concurrency), "--without-gossip", "--without-mingle",
            ],
            "beat": [
                str(bin_dir / "celery"), "-A", "config", "--quiet", "beat", "--loglevel", "WARNING",
                "--schedule", str(LOG_DIR / "celerybeat-schedule"),
            ],
        }  # fmt: skip

    def start(self, *names: str) -> None:
        """Start the named processes (all of them by default) and wait until they serve."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        commands = self.commands()
        for name in names or commands:
            log = (LOG_DIR / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [*DIE_WITH_PARENT, *commands[name]],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"the system did not start; see {LOG_DIR}")

    def ready(self) -> bool:
        if "worker" in self.procs and not self.worker_processes():
            return False
        if "web" in self.procs:
            with contextlib.suppress(httpx.HTTPError):
                up = httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
                return up and len(self.web_processes()) == self.web_workers
            return False
        return True

    def web_processes(self) -> list[int]:
        return children(self.procs["web"].pid)

    def worker_processes(self) -> list[int]:
        """The Celery main process and its pool processes."""
        main = self.procs["worker"].pid
        pool = children(main)
        return [main, *pool] if len(pool) >= self.worker_concurrency else []

    def rss(self) -> dict[str, int]:
        """RSS in KiB of every web worker and worker process, by a stable name."""
        named = {f"web[{i}]": pid for i, pid in enumerate(sorted(self.web_processes()))}
        worker = self.worker_processes()
        named["worker[main]"] = worker[0]
        named.update({f"worker[{i}]": pid for i, pid in enumerate(sorted(worker[1:]))})
        return {name: rss_kib(pid) for name, pid in named.items()}

    def stop(self, *names: str) -> None:
        """Stop the named processes (all of them by default): SIGTERM, as a supervisor does.

        The worker's main process alone gets it (Celery's warm shutdown finishes the tasks under
        way); what is left of a process group after 20 s is killed.
        """
        procs = {name: self.procs.pop(name) for name in names or list(self.procs)}
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
