"""Production settings: refuse to start without secrets, pass Django's deployment checks, and
keep nothing on a database session (PgBouncer in transaction pooling)."""

import base64
import json
import secrets
import socket
import subprocess
import sys

import pytest

from config.weak_settings import DEVELOPMENT_PAYMENT_WEBHOOK_SECRET
from tests.processes import ROOT

PRODUCTION_ENV = {
    "PATH": "/usr/bin:/bin",
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_ALLOWED_HOSTS": "orders.example.com",
    "PAYMENT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    "METRICS_TOKEN": secrets.token_urlsafe(32),
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


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECRET_KEY", "django-insecure-dev-only-key-never-use-in-production", "development key"),
        ("DJANGO_SECRET_KEY", "short-but-not-a-dev-key", "at least 50 random characters"),
        ("DJANGO_SECRET_KEY", "a" * 60, "at least 50 random characters"),
        ("PAYMENT_WEBHOOK_SECRET", DEVELOPMENT_PAYMENT_WEBHOOK_SECRET, "development secret"),
        ("PAYMENT_WEBHOOK_SECRET", "whsec_abc", "decodes to 2 bytes"),
        ("PAYMENT_WEBHOOK_SECRET", "dGVzdA==", "not a Standard Webhooks secret"),
        ("PAYMENT_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"x" * 23).decode(), "decodes to 23 bytes"),
        ("PAYMENT_WEBHOOK_SECRET", "", "must be set"),
        ("DJANGO_DEBUG", "true", "DJANGO_DEBUG must be false"),
        ("DJANGO_ALLOWED_HOSTS", "*", "must not be '*'"),
        ("DJANGO_ALLOWED_HOSTS", "orders.example.com,*", "must not be '*'"),
        ("METRICS_TOKEN", "", "METRICS_TOKEN must be set"),
        ("METRICS_TOKEN", "short", "METRICS_TOKEN must be at least"),
    ],
)
def test_production_refuses_weak_or_development_configuration(name, value, message):
    # given a sound production configuration but for one variable
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), name: value}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_production_names_every_problem_at_once():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": "", "DJANGO_DEBUG": "true", "METRICS_TOKEN": ""}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "Refusing to start" in result.stderr, result.stderr
    for variable in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG", "METRICS_TOKEN"):
        assert f"- {variable}" in result.stderr, result.stderr


def test_a_strong_production_configuration_starts():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}

    result = run_manage("check", env=env)

    assert result.returncode == 0, result.stderr


def test_every_settings_module_refuses_a_malformed_payment_secret():
    # an empty secret would turn every payment callback into an error: refused at start, even in development
    env = {**PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.local", "PAYMENT_WEBHOOK_SECRET": ""}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "PAYMENT_WEBHOOK_SECRET must be set" in result.stderr


def test_seed_demo_refuses_to_run_under_production_settings():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}

    result = run_manage("seed_demo", env=env)

    assert result.returncode != 0
    assert "seed_demo only runs under the development or test settings" in result.stderr
    assert "password=" not in result.stdout


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


def test_a_send_lease_that_ends_before_the_send_tasks_time_limit_is_refused():
    # a second copy of a send could start while the first, past its lease, still sends
    env = {**PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.test", "NOTIFY_SEND_LEASE_SECONDS": "50"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "NOTIFY_SEND_LEASE_SECONDS" in result.stderr


def test_a_webhook_deadline_beyond_the_send_tasks_soft_limit_is_refused():
    env = {**PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.test", "WEBHOOK_DEADLINE_SECONDS": "45"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "WEBHOOK_DEADLINE_SECONDS" in result.stderr
