"""Test-only tasks, loaded by worker processes through TEST_CELERY_IMPORTS (see conftest)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from celery import shared_task


@shared_task
def crash_worker_task(runs_path: str) -> None:
    """Kill the pool process running it, every time: a message that keeps crashing its worker."""
    with Path(runs_path).open("a") as runs:
        runs.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task
def fail_until_fixed_task(fixed_path: str, ran_path: str) -> None:
    """Fail for good (no retry) until ``fixed_path`` exists; then leave ``ran_path`` behind."""
    if not Path(fixed_path).exists():
        raise RuntimeError("the cause is not fixed yet")
    Path(ran_path).write_text("ran\n")
