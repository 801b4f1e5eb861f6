"""The load generator: wrk with bench/wrk/load.lua, and the CPU it used."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.system import DIE_WITH_PARENT

SCRIPT = Path(__file__).resolve().parent / "wrk" / "load.lua"
# wrk's one thread uses a fraction of a core at these rates (reported with every result); a
# second thread would only compete with the server for the machine's cores.
THREADS = 1
SOCKET_ERRORS = ("connect_errors", "read_errors", "write_errors", "timeouts")


@dataclass(frozen=True)
class LoadResult:
    answered: int  # requests of the benchmarked kind that got an answer
    failed: int  # of which answered 4xx/5xx
    refused: int  # of which answered 409 (an order turned away as sold out)
    socket_errors: int  # connect, read, write errors and timeouts
    seconds: float  # from the first request to the last answer
    p50_ms: float
    p99_ms: float
    generator_cpu: float  # wrk's CPU time over its run time: 1.0 is one core
    socket_error_kinds: dict[str, int] = field(default_factory=dict)  # of socket_errors, by kind

    @property
    def throughput(self) -> float:
        return self.answered / self.seconds


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is missing: run the benchmarks with bash scripts/bench.sh, which installs it")
    return path


def run_wrk(
    url: str,
    *,
    token: str,
    kind: str,
    values: list[str],
    connections: int,
    duration: float = 0,
    quota: int = 0,
    cookie: str = "",
) -> LoadResult:
    """Run wrk against ``url``: for ``duration`` seconds, or until ``quota`` requests are answered.

    ``cookie`` is sent with every request (an admin page needs the session's).
    """
    seconds = duration if duration else 600  # a quota run stops itself; this only bounds a stuck one
    argv = [
        *DIE_WITH_PARENT, wrk_path(), "-t", str(THREADS), "-c", str(connections), "-d", f"{seconds:.0f}s",
        "--timeout", "30s",
        "-s", str(SCRIPT), url, "--", token, str(quota), kind, *values,
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "WRK_THREADS": str(THREADS), "WRK_COOKIE": cookie},
    )
    if quota and proc.stdout is not None:
        done_threads = 0
        for line in proc.stdout:
            done_threads += line.strip() == b"thread-done"
            if done_threads == THREADS:
                proc.send_signal(signal.SIGINT)  # wrk stops and prints its results
                break
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr}{stdout}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return LoadResult(
        answered=summary["answered"],
        failed=summary["failed"],
        refused=summary["refused"],
        socket_errors=sum(summary[k] for k in SOCKET_ERRORS),
        socket_error_kinds={k.removesuffix("_errors"): summary[k] for k in SOCKET_ERRORS if summary[k]},
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1e3,
        p99_ms=summary["p99_us"] / 1e3,
        generator_cpu=(usage.ru_utime + usage.ru_stime) / wall,
    )
