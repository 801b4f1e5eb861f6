"""The deployment files in deploy/ against the project: every file parses; each process runs the
contract's command; every variable they set is one the project reads (listed in .env.example);
every probe's path exists and answers, on the port the process listens on; ports agree.

The image's build steps are run here too (scripts/image_steps.py), and the systemd units are
checked by ``systemd-analyze verify`` (scripts/systemd_verify.sh, run by scripts/test.sh).
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

# The contract's process table: each process's command (options may follow).
CONTRACT_COMMANDS = {
    "web": ["gunicorn", "config.wsgi:application"],
    "worker": ["celery", "-A", "config", "worker"],
    "beat": ["celery", "-A", "config", "beat"],
    "migrate": ["python", "manage.py", "migrate"],
}
WEB_PORT = 8000
WORKER_METRICS_PORT = 9808
GRACEFUL_TIMEOUT_OPTION = "--graceful-timeout"


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def process_of(command: list[str]) -> str:
    """Which contract process ``command`` runs; fails if it runs none of them."""
    for name, expected in CONTRACT_COMMANDS.items():
        if command[: len(expected)] == expected:
            return name
    raise AssertionError(f"not a command of the contract: {command}")


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def graceful_timeout(command: list[str]) -> int:
    return int(option(command, GRACEFUL_TIMEOUT_OPTION))


def bind_port(command: list[str]) -> int:
    return int(option(command, "--bind").rsplit(":", 1)[1])


def seconds(value: str | int) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)(s|m)?", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "m" else 1)


def assert_probe_answers(path: str, host: str = "localhost") -> None:
    """The path exists in the project's URLs and answers 200 (with the services up)."""
    with override_settings(ALLOWED_HOSTS=[host]):
        response = Client().get(path, HTTP_HOST=host)
    assert response.status_code == 200, (path, response.status_code, response.content[:200])


def load_image_steps() -> Any:
    spec = importlib.util.spec_from_file_location("image_steps", ROOT / "scripts" / "image_steps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    return load_image_steps().instructions((DEPLOY / "Dockerfile").read_text())


def test_the_image_is_multi_stage_non_root_on_the_public_python_base_by_default():
    steps = dockerfile()
    keywords = [keyword for keyword, _ in steps]

    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    stages = [arguments for keyword, arguments in steps if keyword == "FROM"]
    assert stages == ["${BASE_IMAGE} AS build", "${BASE_IMAGE} AS runtime"]
    runtime = steps[len(keywords) - 1 - keywords[::-1].index("FROM") :]
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # only the built virtualenv and code reach the runtime stage: no pip install, no compiler
    assert all("pip install" not in arguments for keyword, arguments in runtime if keyword == "RUN")
    assert [a for k, a in runtime if k == "COPY"] == ["--from=build /opt/venv /opt/venv", "--from=build /app /app"]


def test_the_image_installs_the_production_lock_with_hashes_and_collects_static_files():
    runs = [arguments for keyword, arguments in dockerfile() if keyword == "RUN"]

    assert any("--require-hashes -r /tmp/requirements.lock" in run for run in runs)
    assert any("manage.py collectstatic" in run for run in runs)
    lock = (ROOT / "requirements.lock").read_text()
    for tool in ("pytest", "honcho", "ruff", "mypy", "selenium"):
        assert not re.search(rf"^{tool}==", lock, flags=re.MULTILINE), f"{tool} is in the production lock"


def test_the_image_runs_gunicorn_as_pid_1_with_a_graceful_timeout_on_the_exposed_port():
    steps = dockerfile()
    (cmd,) = [arguments for keyword, arguments in steps if keyword == "CMD"]
    command = json.loads(cmd)  # the exec form: no shell between the runtime and gunicorn

    assert process_of(command) == "web"
    assert graceful_timeout(command) > 0
    exposed = {int(port) for keyword, arguments in steps if keyword == "EXPOSE" for port in arguments.split()}
    assert exposed == {bind_port(command), WORKER_METRICS_PORT}
    env = " ".join(arguments for keyword, arguments in steps if keyword == "ENV")
    python_and_pip = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_DISABLE_PIP_VERSION_CHECK"}
    python_and_pip.add("PIP_NO_CACHE_DIR")
    assert set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", env)) - python_and_pip <= env_example_names()


def test_the_build_context_leaves_out_local_environments_and_secrets():
    ignored = (ROOT / ".dockerignore").read_text().split()

    assert {".venv", ".env", ".git"} <= set(ignored)


@pytest.mark.django_db
def test_the_images_steps_run_in_a_throwaway_virtualenv_and_its_command_serves(service_env):
    # every RUN of the Dockerfile, then its CMD (against the test database and services),
    # answering /healthz and /readyz: half a minute or so
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "image_steps.py")],
        env=service_env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every step of deploy/Dockerfile ran" in result.stdout
    assert "/healthz 200, /readyz 200" in result.stdout


# --- compose --------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_app_services() -> dict[str, dict[str, Any]]:
    """The services that run the order service's image (the others are PostgreSQL, RabbitMQ, Redis)."""
    return {name: service for name, service in compose()["services"].items() if "build" in service}


def test_compose_runs_the_three_services_a_migration_web_worker_and_one_beat():
    services = compose()["services"]

    assert set(services) == {"postgres", "rabbitmq", "redis", "migrate", "web", "worker", "beat"}
    assert {name: process_of(service["command"]) for name, service in compose_app_services().items()} == {
        "migrate": "migrate",
        "web": "web",
        "worker": "worker",
        "beat": "beat",
    }
    assert "deploy" not in services["beat"]  # no replicas: exactly one
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["restart"] == "no"


def test_compose_sets_only_variables_the_project_reads():
    known = env_example_names()
    for name, service in compose_app_services().items():
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets {unknown}, which .env.example does not list"


def test_compose_health_checks_and_stop_grace_periods():
    services = compose()["services"]
    for name in ("postgres", "rabbitmq", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name

    web_command = services["web"]["command"]
    # web: its port is published and probed; stopping waits for gunicorn's graceful timeout
    assert services["web"]["ports"] == [f"${{WEB_PORT:-{WEB_PORT}}}:{bind_port(web_command)}"]
    probe = " ".join(services["web"]["healthcheck"]["test"])
    path = re.search(rf"http://127\.0\.0\.1:{bind_port(web_command)}(/\w+)", probe)
    assert path, probe
    assert seconds(services["web"]["stop_grace_period"]) > graceful_timeout(web_command)
    # worker: the probed port is the metrics port it is given; a warm shutdown has time to finish
    assert services["worker"]["environment"]["WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT)
    assert f"127.0.0.1:{WORKER_METRICS_PORT}/metrics" in " ".join(services["worker"]["healthcheck"]["test"])
    assert seconds(services["worker"]["stop_grace_period"]) >= 60


@pytest.mark.django_db
def test_compose_probe_paths_answer():
    probe = " ".join(compose()["services"]["web"]["healthcheck"]["test"])
    (path,) = re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", probe)

    assert_probe_answers(path)


# --- Kubernetes -----------------------------------------------------------------------------------


def kubernetes() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def kind(kind_name: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in kubernetes() if doc["kind"] == kind_name}


def containers() -> dict[str, dict[str, Any]]:
    found = {}
    for workload in [*kind("Deployment").values(), *kind("Job").values()]:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            found[workload["metadata"]["name"]] = container
    return found


def test_kubernetes_has_web_and_worker_deployments_one_beat_and_a_migrate_job():
    deployments = kind("Deployment")

    assert set(deployments) == {"orders-web", "orders-worker", "orders-beat"}
    assert deployments["orders-beat"]["spec"]["replicas"] == 1
    assert deployments["orders-beat"]["spec"]["strategy"]["type"] == "Recreate"
    assert set(kind("Job")) == {"orders-migrate"}
    assert {name: process_of(container["command"]) for name, container in containers().items()} == {
        "orders-web": "web",
        "orders-worker": "worker",
        "orders-beat": "beat",
        "orders-migrate": "migrate",
    }
    budgets = kind("PodDisruptionBudget")
    assert set(budgets) == {"orders-web", "orders-worker"}
    for budget in budgets.values():
        assert (
            budget["spec"]["selector"]["matchLabels"]
            == deployments[budget["metadata"]["name"]]["spec"]["selector"]["matchLabels"]
        )


def test_kubernetes_kustomization_lists_files_that_exist():
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())

    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes" / resource).is_file(), resource


def test_kubernetes_sets_only_variables_the_project_reads():
    known = env_example_names()
    names = set(kind("ConfigMap")["orders"]["data"]) | set(kind("Secret")["orders"]["stringData"])
    for container in containers().values():
        names |= {variable["name"] for variable in container.get("env", [])}
        assert {source.get("configMapRef", source.get("secretRef"))["name"] for source in container["envFrom"]} == {
            "orders"
        }

    assert names - known == set()


def test_kubernetes_containers_have_resources_and_run_unprivileged():
    for name, container in containers().items():
        assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"], name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
    for workload in [*kind("Deployment").values(), *kind("Job").values()]:
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_probes_have_timeouts_and_point_at_the_ports_the_processes_listen_on():
    web = containers()["orders-web"]
    ports = {port["name"]: port["containerPort"] for port in web["ports"]}
    assert ports == {"http": bind_port(web["command"])}
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = web[probe_name]
        assert probe["timeoutSeconds"] <= 2, probe_name  # /readyz answers within a second
        assert probe["httpGet"]["port"] == "http"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"

    worker = containers()["orders-worker"]
    assert worker["ports"] == [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}]
    assert kind("ConfigMap")["orders"]["data"]["WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT)
    assert worker["livenessProbe"]["tcpSocket"]["port"] == "metrics"
    assert worker["livenessProbe"]["timeoutSeconds"] <= 2


def test_kubernetes_stops_gracefully():
    deployments = kind("Deployment")
    web = containers()["orders-web"]
    pre_stop = web["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    web_grace = deployments["orders-web"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert web_grace > int(pre_stop[1]) + graceful_timeout(web["command"])
    assert deployments["orders-worker"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


@pytest.mark.django_db
def test_kubernetes_probe_paths_answer_with_the_host_they_send():
    allowed = kind("ConfigMap")["orders"]["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
    web = containers()["orders-web"]
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = web[probe_name]["httpGet"]
        (host,) = [header["value"] for header in probe["httpHeaders"] if header["name"] == "Host"]
        assert host in allowed  # else Django answers the probe 400
        assert_probe_answers(probe["path"], host)


# --- systemd --------------------------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


def exec_start(name: str) -> list[str]:
    command = shlex.split(unit(name)["Service"]["ExecStart"])
    assert command[0].startswith("/opt/orders/venv/bin/"), command
    return [Path(command[0]).name, *command[1:]]


def test_systemd_units_run_the_contracts_commands():
    assert process_of(exec_start("orders-web.service")) == "web"
    assert process_of(exec_start("orders-worker.service")) == "worker"
    assert process_of(exec_start("orders-beat.service")) == "beat"
    for name in ("orders-web.service", "orders-worker.service", "orders-beat.service"):
        service = unit(name)["Service"]
        assert service["EnvironmentFile"] == "/etc/orders/orders.env"
        assert service["WorkingDirectory"] == "/opt/orders/app"  # where gunicorn.conf.py is read
        assert service["User"] == "orders"


def test_systemd_stops_the_worker_and_web_gracefully():
    worker = unit("orders-worker.service")["Service"]
    assert worker["KillMode"] == "mixed"  # SIGTERM to the main process only
    assert seconds(worker["TimeoutStopSec"]) >= 60
    web = unit("orders-web.service")["Service"]
    assert seconds(web["TimeoutStopSec"]) > graceful_timeout(exec_start("orders-web.service"))
    assert bind_port(exec_start("orders-web.service")) == WEB_PORT


def test_systemd_environment_file_sets_only_variables_the_project_reads():
    lines = (DEPLOY / "systemd" / "orders.env").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}

    assert {"DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "DATABASE_URL", "METRICS_DIR"} <= names
    assert names - env_example_names() == set()


def test_systemd_metrics_directory_is_writable_by_the_units():
    metrics_dir = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "orders.env").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )["METRICS_DIR"]
    for name in ("orders-web.service", "orders-worker.service"):
        service = unit(name)["Service"]
        assert f"/run/{service['RuntimeDirectory']}" == metrics_dir
        assert metrics_dir in service["ReadWritePaths"].split()
