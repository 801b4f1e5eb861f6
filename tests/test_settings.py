"""Production settings: refuse to start without secrets, pass Django's deployment checks, and
keep nothing on a database session (PgBouncer in transaction pooling)."""

import json
import secrets
import socket
import subprocess
import sys

from tests.processes import ROOT

PRODUCTION_ENV = {
    "PATH": "/usr/bin:/bin",
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_ALLOWED_HOSTS": "orders.example.com",
    "PAYMENT_WEBHOOK_SECRET": "whsec_c2VjcmV0LWZvci1jaGVja3M=",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", env=PRODUCTION_ENV)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    del env["DJANGO_ALLOWED_HOSTS"]

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_check_deploy_is_clean_under_production_settings():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_answers_to_its_own_address_for_probes_and_scrapes():
    # Prometheus sends the target's address (a pod IP) as Host; it must not be refused with 400
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    code = "from django.conf import settings; import socket; print(settings.ALLOWED_HOSTS)"

    result = run_manage("shell", "--no-imports", "-c", code, env=env)

    assert result.returncode == 0, result.stderr
    hosts = eval(result.stdout)  # noqa: S307 (a list printed by the test's own process)
    assert hosts[0] == "orders.example.com"
    assert socket.gethostname() in hosts
    assert "*" not in hosts


# Database options that tie state to a database session, which PgBouncer's transaction pooling
# hands to another client after each transaction.
SESSION_BOUND_OPTIONS = ("pool", "server_side_binding", "prepare_threshold", "assume_role")


def test_production_keeps_nothing_on_a_database_session():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    code = (
        "import json; from django.conf import settings; db = settings.DATABASES['default']; "
        "print(json.dumps({'cursors_disabled': db['DISABLE_SERVER_SIDE_CURSORS'], 'options': sorted(db['OPTIONS'])}))"
    )

    result = run_manage("shell", "--no-imports", "-c", code, env=env)

    assert result.returncode == 0, result.stderr
    database = json.loads(result.stdout.strip().splitlines()[-1])
    assert database["cursors_disabled"] is True
    assert not set(database["options"]) & set(SESSION_BOUND_OPTIONS), database["options"]
