"""Run the image's build steps (deploy/Dockerfile) here, without a container engine, then start
the image's command and check that it serves.

    .venv/bin/python scripts/image_steps.py [--keep]

The Dockerfile itself is read, so what runs is what the image runs: each stage's ENV, WORKDIR,
COPY and RUN, in order, with the image's paths (/opt/venv, /app, /tmp/...) mapped into a
throw-away directory and the base image's ``python`` being this machine's Python 3.11. Steps
that need root and change the machine (making the image's user) are skipped and named. Then the
final stage's CMD starts, under the image's environment plus the production secrets it needs,
and must answer ``/healthz`` and ``/readyz`` and stop within its graceful timeout on SIGTERM.

Exits non-zero, naming the step, if any step fails.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# Steps that make the image's unprivileged user: they would change this machine.
SKIPPED_COMMANDS = ("groupadd", "useradd")


def say(message: str) -> None:
    print(f"[image] {message}", flush=True)  # noqa: T201 (a script's progress)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            keyword, _, arguments = current.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
            current = ""
    return found


def ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    for pattern in patterns:
        pattern = pattern.removeprefix("**/")
        if fnmatch.fnmatch(path, pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def copy_context(destination: Path) -> None:
    """``COPY . .``: the repository, less what .dockerignore leaves out."""
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    for source in ROOT.rglob("*"):
        relative = source.relative_to(ROOT).as_posix()
        if source.is_dir() or ignored(relative, patterns):
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, host: str) -> int:
    request = urllib.request.Request(url, headers={"Host": host})  # noqa: S310 (a local URL)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class Image:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {}
        self.workdir = root
        self.cmd: list[str] = []
        # The base image's python is this machine's Python 3.11, first on PATH.
        bin_dir = root / "base-bin"
        bin_dir.mkdir()
        (root / "tmp").mkdir()
        (bin_dir / "python").symlink_to(sys.executable if sys.prefix == sys.base_prefix else self._base_python())
        self.base_path = f"{bin_dir}:/usr/bin:/bin"

    @staticmethod
    def _base_python() -> str:
        return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")

    def path(self, text: str) -> str:
        """The image's absolute paths, inside the throw-away directory."""
        return re.sub(r"(?<![\w.])/(opt|app|tmp)(?=/|\b)", lambda m: f"{self.root}/{m.group(1)}", text)

    def environment(self) -> dict[str, str]:
        env = {"HOME": str(self.root), "LANG": "C.UTF-8", "PATH": self.base_path}
        for key in (
            "PIP_CERT",
            "PIP_FIND_LINKS",
            "PIP_INDEX_URL",
            "PIP_EXTRA_INDEX_URL",
            "PIP_CONFIG_FILE",
            "SSL_CERT_FILE",
        ):
            if key in os.environ:  # how this machine reaches PyPI
                env[key] = os.environ[key]
        for key, value in self.env.items():
            env[key] = value.replace("$PATH", env["PATH"])
        return env

    def step(self, keyword: str, arguments: str) -> None:
        if keyword in ("ARG", "EXPOSE", "USER", "LABEL"):
            return
        if keyword == "FROM":
            say(f"stage {arguments.split(' AS ')[-1].strip() if ' AS ' in arguments else arguments}")
            self.env, self.workdir = {}, self.root
            return
        if keyword == "ENV":
            for assignment in shlex.split(arguments):
                key, _, value = assignment.partition("=")
                self.env[key] = self.path(value)
            return
        if keyword == "WORKDIR":
            self.workdir = Path(self.path(arguments))
            self.workdir.mkdir(parents=True, exist_ok=True)
            return
        if keyword == "COPY":
            self.copy(arguments)
            return
        if keyword == "RUN":
            self.run(arguments)
            return
        if keyword == "CMD":
            self.cmd = [self.path(word) for word in json.loads(arguments)]  # the exec form
            return
        raise SystemExit(f"[image] {keyword} is not handled by this script: extend it")

    def copy(self, arguments: str) -> None:
        words = [word for word in arguments.split() if not word.startswith("--")]
        source, target = words[0], words[-1]
        if "--from=" in arguments:
            say(f"COPY {source} (from the build stage: already in place)")
            return
        if source == ".":
            say("COPY . (the repository, less .dockerignore)")
            copy_context(self.workdir if target == "." else Path(self.path(target)))
            return
        destination = Path(self.path(target)) if target.startswith("/") else self.workdir / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / source, destination)
        say(f"COPY {source}")

    def run(self, command: str) -> None:
        if command.split()[0] in SKIPPED_COMMANDS:
            say(f"skipped (changes this machine's users): {command[:70]}")
            return
        command = self.path(command)
        say(f"RUN {command[:110]}{'...' if len(command) > 110 else ''}")
        started = time.monotonic()
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=self.workdir, env=self.environment())
        if result.returncode != 0:
            raise SystemExit(f"[image] step failed ({result.returncode}): {command}")
        say(f"  done in {time.monotonic() - started:.1f}s")

    def serve(self, extra_env: dict[str, str]) -> None:
        """Start the image's command, check it serves, stop it as a container stop would."""
        port = free_port()
        argv = [word.replace("0.0.0.0:8000", f"127.0.0.1:{port}") for word in self.cmd]
        say(f"CMD {' '.join(argv)}")
        env = {**self.environment(), **extra_env}
        process = subprocess.Popen(argv, cwd=self.workdir, env=env)
        host = env["DJANGO_ALLOWED_HOSTS"].split(",")[0]
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if get(f"http://127.0.0.1:{port}/healthz", host) == 200:
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("[image] the image's command did not serve /healthz")
                time.sleep(0.5)
            ready = get(f"http://127.0.0.1:{port}/readyz", host)
            say(f"/healthz 200, /readyz {ready}")
            if ready != 200:
                raise SystemExit("[image] /readyz did not answer 200")
            stopping = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=40)
            say(f"stopped by SIGTERM in {time.monotonic() - stopping:.1f}s (exit {code})")
            if code != 0:
                raise SystemExit("[image] the image's command did not stop cleanly")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def production_secrets() -> dict[str, str]:
    """What a deployment supplies: random secrets, and this machine's services."""
    env = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "PAYMENT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "DJANGO_ALLOWED_HOSTS": "orders.example.com",
    }
    for key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the throw-away directory (printed)")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orders-image-"))
    try:
        image = Image(root)
        for keyword, arguments in instructions(DOCKERFILE.read_text()):
            image.step(keyword, arguments)
        image.serve(production_secrets())
        venv_python = root / "opt" / "venv" / "bin" / "python"
        for tool in ("pytest", "honcho", "ruff", "mypy"):
            if subprocess.run([str(venv_python), "-c", f"import {tool}"], capture_output=True).returncode == 0:
                raise SystemExit(f"[image] {tool} is installed in the image's virtualenv: not a runtime dependency")
        say("no development or test tools in the image's virtualenv")
        say("every step of deploy/Dockerfile ran")
    finally:
        if options.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
