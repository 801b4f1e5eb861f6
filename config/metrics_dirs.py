"""Where the web and worker processes keep their Prometheus metrics: one directory per instance.

gunicorn and Celery's prefork pool run the code in several processes; a counter kept in one
process's memory would only be seen by the scrape that happens to reach that process, and would
be lost when the process is replaced. prometheus_client's multiprocess mode has every process
write its values to a memory-mapped file in ``PROMETHEUS_MULTIPROC_DIR``, and the endpoint
sums the files of every process, dead ones included, so nothing is lost.

Each gunicorn master (``gunicorn.conf.py``) and each Celery worker (``config/celery_app.py``)
makes a directory of its own, ``orders-metrics-<web|worker>-<pid>`` under ``METRICS_DIR`` (the
system's temporary directory by default), and exports it as ``PROMETHEUS_MULTIPROC_DIR`` to its
children. Two instances on one host therefore never add up each other's counts or wipe each
other's files. The directory is removed when the instance stops; one left behind by an instance
that was killed is removed by the next instance that starts under the same ``METRICS_DIR``.

prometheus_client chooses multiprocess mode once, when it is first imported, so this module must
not import it at the top, and the directory must be set before anything else imports it: hence
its place in ``config``, beside the entry points that call it before Django or any app loads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ROOT_ENV = "METRICS_DIR"
DIR_PREFIX = "orders-metrics-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove_stale(root: Path) -> None:
    """Remove the directories of instances that are no longer running (killed, not stopped)."""
    for path in root.glob(f"{DIR_PREFIX}*-*"):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def metrics_dir_create(kind: str) -> Path:
    """Make this instance's metrics directory and export it to the processes it starts.

    Call in the parent process (gunicorn master, Celery worker main process) before
    prometheus_client is imported. Called again in the same process (gunicorn re-reads its
    settings file on SIGHUP) it keeps the directory and the counts in it.
    """
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    root = Path(os.environ.get(ROOT_ENV) or tempfile.gettempdir())
    path = root / f"{DIR_PREFIX}{kind}-{os.getpid()}"
    if os.environ.get(MULTIPROC_ENV) == str(path) and path.is_dir():
        return path
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    # A directory with this name belongs to an earlier process that had the same pid (a
    # restarted container's pid 1): its counts are not this instance's.
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def metrics_dir_remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def metrics_process_dead(pid: int) -> None:
    """Drop the live-only values (``livesum``-style gauges) of a child process that exited.

    Its counters and histograms stay: they are part of the instance's totals.
    """
    if not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid)


def gunicorn_worker_count() -> int | None:
    """How many workers the gunicorn running this process was told to start, as gunicorn reads
    its options (command line, ``GUNICORN_CMD_ARGS``, ``WEB_CONCURRENCY``); None when it is not
    known here (set in a configuration file other than this repository's ``gunicorn.conf.py``,
    which sets none)."""
    from gunicorn.config import Config

    config = Config()
    parser = config.parser()
    options, _ = parser.parse_known_args(sys.argv[1:])
    env_options, _ = parser.parse_known_args(config.get_cmd_args_from_env())
    for parsed in (options, env_options):
        if getattr(parsed, "workers", None) is not None:
            return int(parsed.workers)
    config_file = options.config or env_options.config
    if config_file and Path(config_file).resolve() != Path(__file__).resolve().parent.parent / "gunicorn.conf.py":
        return None
    return int(config.workers)  # the default: WEB_CONCURRENCY, else 1


def metrics_dir_check_web() -> None:
    """Warn, at a gunicorn worker's start, when several workers run without the metrics directory.

    The directory is made by ``gunicorn.conf.py``, which gunicorn reads from its working
    directory. Started from elsewhere, or with another ``--config``, each worker counts alone,
    and each scrape of ``/metrics`` shows whichever worker answered it: counters jump back and
    forth, and rates are wrong.
    """
    if not os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/") or os.environ.get(MULTIPROC_ENV):
        return
    workers = gunicorn_worker_count()
    if workers == 1:
        return
    import logging

    logging.getLogger(__name__).warning(
        "gunicorn runs %s workers without a metrics directory (%s is not set): each worker counts "
        "alone and /metrics shows whichever answers. Start gunicorn from the repository root so it "
        "reads gunicorn.conf.py (or run one worker).",
        workers if workers is not None else "possibly several",
        MULTIPROC_ENV,
    )
