"""Private PostgreSQL, RabbitMQ and Redis instances on free loopback ports, for real outages.

The PostgreSQL, RabbitMQ and Redis of this machine serve other test runs, so they are never
stopped. A reliability scenario that needs a real stop and start runs its web, workers and beat
against instances of its own, made here in a temporary directory and removed afterwards:

- PostgreSQL: a cluster made with ``initdb`` and run with ``pg_ctl``. PostgreSQL refuses to run
  as root, so when the suite runs as root the cluster belongs to the ``postgres`` user.
- RabbitMQ: a node of its own name, ports, data and log directories, configuration and Erlang
  cookie (it shares epmd, the Erlang port mapper, with any other node of the machine), started
  from RabbitMQ's own scripts as the current user and driven with ``rabbitmqctl -n <node>``.
- Redis: ``redis-server --port N`` without persistence.
- PgBouncer (Debian's package) in transaction pooling mode, in front of any PostgreSQL: the
  machine's shared one is fine, as PgBouncer only opens ordinary connections to it.

A RabbitMQ cluster is three such nodes sharing one Erlang cookie, joined with ``rabbitmqctl
join_cluster`` (:class:`RabbitMQCluster`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg

from tests.faults import free_port
from tests.processes import DIE_WITH_PARENT, wait_until

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
# A node boots in 5-15 s on a loaded two-core machine.
RABBITMQ_START_SECONDS = 90.0
PG_DIR_PREFIX = "orders-postgres-"
PGBOUNCER = Path(os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer"))
PGBOUNCER_DIR_PREFIX = "orders-pgbouncer-"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and someone else's
        pass
    return True


def _free_port_pair() -> tuple[int, int]:
    """Two distinct free ports (RabbitMQ's AMQP and distribution ports)."""
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


class PrivatePostgres:
    """A PostgreSQL cluster of its own on 127.0.0.1:<port>, user ``postgres`` without password."""

    def __init__(self) -> None:
        # Its own directory under the system's temporary directory: the ``postgres`` user must be
        # able to reach it, which a test's private temporary directory (mode 0700) does not allow.
        # ``pg_ctl`` runs the server apart from the test run, so a run that was killed leaves its
        # cluster running; the next one stops and removes it.
        self._as_root = os.geteuid() == 0
        self._remove_orphans()
        self.dir = Path(tempfile.mkdtemp(prefix=PG_DIR_PREFIX))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.port = free_port()

    def _remove_orphans(self) -> None:
        for orphan in Path(tempfile.gettempdir()).glob(f"{PG_DIR_PREFIX}*"):
            if time.time() - orphan.stat().st_mtime < 60:  # another run may be making it right now
                continue
            with contextlib.suppress(OSError, ValueError):
                if pid_alive(int((orphan / "owner.pid").read_text())):
                    continue
            if (orphan / "data" / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._run(PG_BIN / "pg_ctl", "-D", str(orphan / "data"), "-m", "immediate", "-w", "stop")
            shutil.rmtree(orphan, ignore_errors=True)

    def _run(self, *argv: str | Path, timeout: float = 120) -> None:
        command = [str(arg) for arg in argv]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def init(self) -> PrivatePostgres:
        if self._as_root:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self._run(
            PG_BIN / "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
            "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        return self

    def start(self) -> None:
        # Small and fast: no durability needed for a throw-away cluster (fsync off), a unix socket
        # inside the temporary directory, TCP on loopback only.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop now: open connections are closed (``-m fast``), as in a crash of the server."""
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


# What docs/operations.md recommends for a cluster: a delayed message (a retry with a countdown)
# that expires while the queue it moves to has lost its leader is forwarded again after 5 s, not
# RabbitMQ's default of 3 minutes.
ADVANCED_CONFIG = "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 5000}]}].\n"


class PrivateRabbitMQ:
    """A RabbitMQ node of its own (``<name>-<port>@localhost``), guest/guest allowed from loopback.

    ``directory`` (under ``base_dir``) holds its data, logs and configuration; ``cookie`` is the
    Erlang cookie it shares with the other nodes of its cluster (a random one of its own otherwise).
    """

    def __init__(
        self, base_dir: Path, *, name: str = "reliability", directory: str = "rabbitmq", cookie: str | None = None
    ) -> None:
        self.dir = base_dir / directory
        self.port, self.dist_port = _free_port_pair()
        # Unique per run: two runs on one machine register different names with epmd.
        self.node = f"{name}-{self.port}@localhost"
        self.cookie = cookie or secrets.token_hex(16).upper()
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.vm_pid: int | None = None  # the Erlang VM's operating-system process, once running
        self._log: IO[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.dir / "home"),  # where the Erlang cookie of the node and its CLI is
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def init(self) -> PrivateRabbitMQ:
        home = self.dir / "home"
        for directory in (home, self.dir / "mnesia", self.dir / "log"):
            directory.mkdir(parents=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq/rabbitmq-env.conf
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "advanced.config").write_text(ADVANCED_CONFIG)
        return self

    def start(self) -> None:
        """Start the node (the Erlang VM and the broker) and wait until it takes connections."""
        self.launch()
        self.await_running()

    def launch(self) -> None:
        """Start the node without waiting for it (nodes of a cluster boot side by side)."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*DIE_WITH_PARENT, str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env,
            cwd=self.dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def await_running(self) -> None:
        def running() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"RabbitMQ node {self.node} exited; see {self.log_path}")
            return self.ctl_ok("await_startup", "--timeout", "5")

        wait_until(running, timeout=RABBITMQ_START_SECONDS, interval=1, message=f"RabbitMQ node {self.node}")
        # rabbitmq-server is a shell script around the Erlang VM: kill() needs the VM itself.
        self.vm_pid = int(self.ctl("eval", "list_to_integer(os:getpid()).").stdout.strip())

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ctl_ok(self, *args: str) -> bool:
        return self.ctl(*args, check=False).returncode == 0

    def ctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def stop_app(self) -> None:
        """Stop the broker inside the running node: every connection is closed, new ones refused."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")

    def kill(self) -> None:
        """``kill -9`` the node's Erlang VM, as a crash of its machine would end it: no goodbye to
        its clients or to the other nodes of its cluster. ``start()`` brings it back on its data."""
        assert self.proc is not None and self.vm_pid is not None
        os.kill(self.vm_pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # the VM's helper processes, if any are left
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc, self.vm_pid = None, None
        if self._log is not None:
            self._log.close()

    def add_vhost(self, vhost: str) -> None:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError):
                self.ctl("stop", timeout=60)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass(frozen=True)
class QueueReplicas:
    """Where a quorum queue lives: the node that leads it, its members, and those online."""

    leader: str
    members: list[str]
    online: list[str]


class RabbitMQCluster:
    """Three (``size``) private RabbitMQ nodes on loopback, clustered: one Erlang cookie for all,
    the second and third joined to the first with ``rabbitmqctl join_cluster``.

    Quorum queues declared once the cluster is formed have a replica on every node (RabbitMQ's
    default initial group size is the cluster's size): a majority (two of three) keeps each queue
    available, and a node that comes back catches its replicas up. ``url`` lists every node, as
    a Celery/kombu failover URL.
    """

    def __init__(self, base_dir: Path, *, size: int = 3) -> None:
        cookie = secrets.token_hex(16).upper()
        self.nodes = [
            PrivateRabbitMQ(base_dir, name=f"cluster{i}", directory=f"rabbitmq-{i}", cookie=cookie)
            for i in range(1, size + 1)
        ]
        self.first = self.nodes[0].node  # the node ``url`` lists first

    def init(self) -> RabbitMQCluster:
        for node in self.nodes:
            node.init()
        return self

    def start(self) -> None:
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.await_running()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.start_app()
        wait_until(
            lambda: set(self.running_nodes()) == {node.node for node in self.nodes},
            timeout=60,
            message="every node running in the cluster",
        )

    def running_nodes(self) -> list[str]:
        status = json.loads(self.ctl("cluster_status", "--formatter", "json").stdout)
        return list(status["running_nodes"])

    def node_named(self, name: str) -> PrivateRabbitMQ:
        return next(node for node in self.nodes if node.node == name)

    def ctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl`` against a node that is running (the cluster answers for all of them)."""
        node = next(node for node in self.nodes if node.running)
        return node.ctl(*args, check=check, timeout=timeout)

    def add_vhost(self, vhost: str) -> None:
        self.nodes[0].add_vhost(vhost)

    def replicas(self, vhost: str) -> dict[str, QueueReplicas]:
        """Every quorum queue of ``vhost``, by name."""
        listed = self.ctl("list_queues", "-p", vhost, "name", "type", "leader", "members", "online",
                          "--formatter", "json").stdout  # fmt: skip
        return {
            queue["name"]: QueueReplicas(queue["leader"], sorted(queue["members"]), sorted(queue["online"]))
            for queue in json.loads(listed)
            if queue["type"] == "quorum"
        }

    def url(self, vhost: str) -> str:
        """Every node, ``first`` first: clients connect to the first node of the list and move on
        to the next when it fails (kombu's round-robin failover)."""
        first = [node for node in self.nodes if node.node == self.first] or self.nodes[:1]
        return ";".join(node.url(vhost) for node in first + [node for node in self.nodes if node not in first])

    def destroy(self) -> None:
        for node in self.nodes:
            node.destroy()


class PrivateRedis:
    """``redis-server`` on 127.0.0.1:<port>, without persistence."""

    def __init__(self, base_dir: Path) -> None:
        self.dir = base_dir / "redis"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir),
        ]  # fmt: skip
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*DIE_WITH_PARENT, *argv], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._answers, timeout=30, message=f"redis on port {self.port}")

    def _answers(self) -> bool:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, timeout=5
            )
            return result.stdout.strip() == "PONG"
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


class PrivatePgBouncer:
    """PgBouncer on 127.0.0.1:<port> in transaction pooling mode, in front of ``database`` on
    ``upstream_host:upstream_port`` (user ``postgres``, trusted on loopback).

    ``pool_size`` server connections at most are shared by every client: a client holds one only
    for the length of a transaction, so anything a client leaves on a session (a session-level
    advisory lock, a ``SET``, a prepared statement, a cursor kept open) is seen by the next one.
    PgBouncer refuses to run as root: under root it runs as ``postgres``, from a directory of
    its own under the system's temporary directory (a run that was killed leaves it behind; the
    next run stops it and removes it, as :class:`PrivatePostgres` does).
    """

    def __init__(self, *, upstream_host: str, upstream_port: int, database: str, pool_size: int) -> None:
        self._as_root = os.geteuid() == 0
        self._remove_orphans()
        self.dir = Path(tempfile.mkdtemp(prefix=PGBOUNCER_DIR_PREFIX))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        self.port = free_port()
        self.database = database
        self.pool_size = pool_size
        self.upstream = f"host={upstream_host} port={upstream_port} dbname={database}"
        self.log_path = self.dir / "pgbouncer.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _remove_orphans(self) -> None:
        for orphan in Path(tempfile.gettempdir()).glob(f"{PGBOUNCER_DIR_PREFIX}*"):
            if time.time() - orphan.stat().st_mtime < 60:  # another run may be making it right now
                continue
            with contextlib.suppress(OSError, ValueError):
                if pid_alive(int((orphan / "owner.pid").read_text())):
                    continue
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((orphan / "pgbouncer.pid").read_text()), signal.SIGKILL)
            shutil.rmtree(orphan, ignore_errors=True)

    def start(self) -> PrivatePgBouncer:
        users = self.dir / "users.txt"
        users.write_text('"postgres" ""\n')
        config = self.dir / "pgbouncer.ini"
        config.write_text(
            f"""[databases]
{self.database} = {self.upstream}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
admin_users = postgres
pool_mode = transaction
default_pool_size = {self.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
logfile = {self.log_path}
pidfile = {self.dir / "pgbouncer.pid"}
"""
        )
        if self._as_root:
            owner = pwd.getpwnam("postgres")
            for path in (self.dir, users, config):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            # setpriv sets the parent-death signal after changing user, so it survives the change.
            argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--pdeathsig", "TERM", "--"]
        else:
            argv = list(DIE_WITH_PARENT)
        self.proc = subprocess.Popen(
            [*argv, str(PGBOUNCER), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=30, message=f"PgBouncer on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"PgBouncer exited; see {self.log_path}")
        with contextlib.suppress(psycopg.Error):
            self.show("VERSION")
            return True
        return False

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on PgBouncer's admin console (``POOLS``, ``STATS``, ``SERVERS``, ...)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def url(self, database: str | None = None) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database or self.database}"

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
