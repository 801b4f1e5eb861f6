"""Settings of the web process, read by ``gunicorn config.wsgi:application`` from the working
directory (gunicorn's default ``./gunicorn.conf.py``). Command-line options still win.

Only what keeps ``/metrics`` right with several worker processes is here (config/metrics_dirs.py):
the master makes this instance's metrics directory before any worker imports the application,
and drops the live-only values of each worker that exits.
"""

from typing import Any

from config.metrics_dirs import metrics_dir_create, metrics_dir_remove, metrics_process_dead

# Before gunicorn forks (or, with --preload, loads the application): every worker inherits it.
metrics_dir = metrics_dir_create("web")


def child_exit(server: Any, worker: Any) -> None:
    metrics_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    metrics_dir_remove(metrics_dir)
