"""Run every process of a Procfile in the foreground and stop them all together.

``python scripts/run_procfile.py [Procfile]`` is ``honcho start`` (same process manager) with
three differences that matter on a development machine:

* Closing the terminal stops the processes, as Ctrl-C does. honcho starts each process in a
  session of its own and does not handle SIGHUP itself, so the hang-up would kill honcho and
  leave gunicorn and celery running, orphaned, holding the port.
* Losing standard output (``run.sh | tee run.log`` and then Ctrl-C, which kills ``tee`` too)
  stops the processes. In honcho the broken pipe raises inside its signal handler and it waits
  forever for processes it never told to stop.
* Variables come from the environment only. ``honcho start`` lets a ``.env`` file override the
  environment, while the settings read ``.env`` with the environment winning; reading it in one
  place keeps ``manage.py`` and the processes in agreement.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

from honcho.environ import expand_processes, parse_procfile
from honcho.manager import Manager

# The exit status of a shell whose command was hung up on (128 + SIGHUP).
HANGUP_EXIT_STATUS = 128 + signal.SIGHUP


class Output:
    """Standard output that, once its reader is gone, calls ``on_broken`` and discards the rest."""

    def __init__(self, stream: IO[str], on_broken: Callable[[], None]) -> None:
        self._stream = stream
        self._on_broken = on_broken
        self.broken = False

    def isatty(self) -> bool:
        return not self.broken and self._stream.isatty()

    def write(self, text: str) -> None:
        if self.broken:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError:  # EPIPE from a dead pipe reader, EIO from a closed terminal
            self._break()

    def _break(self) -> None:
        self.broken = True
        # Point file descriptor 1 at /dev/null so the interpreter's final flush of whatever is
        # still buffered cannot fail again on the way out.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)
        self._on_broken()


class Printer:
    """Prints each line as ``name | line``; the processes' own log lines carry the time."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.width = 0  # set by the manager to the longest process name
        self._colour = output.isatty()

    def write(self, message: Any) -> None:
        data = message.data
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        prefix = f"{(message.name or '').ljust(self.width)} | "
        if self._colour and message.colour:
            prefix = f"\033[0m\033[{message.colour}m{prefix}\033[0m"
        self.output.write("".join(f"{prefix}{line}\n" for line in text.splitlines()))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("procfile", nargs="?", default="Procfile", type=Path)
    args = parser.parse_args(argv)

    manager: Manager | None = None
    manager_pid = os.getpid()
    stopping = False

    def stop(reason: str, exit_status: int) -> None:
        nonlocal stopping
        if manager is None or stopping:
            return
        stopping = True
        manager._system_print(f"{reason}\n")  # honcho's own "system | ..." line (honcho is pinned)
        if manager.returncode is None:
            manager.returncode = exit_status
        manager.terminate()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        # honcho's helper processes (one per Procfile entry) are forked from here and inherit
        # this handler; only the manager acts, the helpers keep relaying output until the end.
        if os.getpid() == manager_pid:
            stop("SIGHUP received", HANGUP_EXIT_STATUS)

    output = Output(sys.stdout, on_broken=lambda: stop("standard output closed", HANGUP_EXIT_STATUS))
    manager = Manager(Printer(output))
    processes = parse_procfile(args.procfile.read_text()).processes
    for process in expand_processes(processes):
        # PORT and the rest are inherited unchanged from this process's environment.
        manager.add_process(process.name, process.cmd, quiet=process.quiet, env={**os.environ, **process.env})
    signal.signal(signal.SIGHUP, on_hangup)
    manager.loop()  # handles SIGINT and SIGTERM: SIGTERM to every process group, SIGKILL after 5s
    # honcho signals only the processes still running; one that died may have left children
    # (gunicorn workers, celery pool processes) in its group. Each group is named by its leader,
    # the shell honcho started (honcho is pinned, so its private bookkeeping is stable).
    for entry in manager._processes.values():
        if entry.get("pid"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry["pid"], signal.SIGKILL)
    returncode = int(manager.returncode or 0)
    # A process killed by a signal reports minus the signal number; a shell reports 128 + it.
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
