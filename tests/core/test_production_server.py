"""The web process as deployed: gunicorn under production settings, after collectstatic."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import processes
from tests.processes import ROOT, Gunicorn, free_port, wait_until


def production_env(service_env: dict[str, str], static_root: Path) -> dict[str, str]:
    env = {
        **service_env,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PAYMENT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        # gunicorn is reached over plain HTTP here, without the TLS-terminating proxy.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_STATIC_ROOT": str(static_root),
        "LOG_LEVEL": "INFO",
    }
    # The production default (JSON lines) is what is under test, whatever the caller's shell says.
    for name in ("LOG_FORMAT", "DJANGO_DEBUG", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def production_server(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    env = production_env(service_env, tmp_path_factory.mktemp("staticfiles"))
    processes.collect_static(env)
    server = Gunicorn(env, log_dir=tmp_path_factory.mktemp("gunicorn"), port=free_port())
    server.start()
    yield server
    server.stop()


def test_production_refuses_to_start_with_private_webhook_targets_allowed(service_env, tmp_path):
    env = {**production_env(service_env, tmp_path), "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert "WEBHOOK_ALLOW_PRIVATE_NETWORKS must not be true in production" in result.stderr


def json_log_lines(server: Gunicorn) -> list[dict[str, Any]]:
    """The log lines that are JSON objects (gunicorn's own lines are not)."""
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_log_lines_of_a_request_are_json_and_carry_its_request_id(production_server):
    # given a caller that sends its own request id
    request_id = str(uuid.uuid4())

    # when a request is logged (a 404 under /api/ is a warning of django.request)
    response = httpx.get(f"{production_server.base_url}/api/v1/no-such-thing/", headers={"X-Request-ID": request_id})

    # then the id is returned, and the log line of that request is JSON and carries it
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-ID"] == request_id

    def logged() -> list[dict[str, Any]]:
        return [line for line in json_log_lines(production_server) if line["request_id"] == request_id]

    [line] = wait_until(logged, timeout=10, message="the request's log line")
    assert line["level"] == "WARNING"
    assert line["name"] == "django.request"
    assert line["message"] == "Not Found: /api/v1/no-such-thing/"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", line["time"])


def test_every_application_log_line_is_json(production_server):
    httpx.get(f"{production_server.base_url}/api/v1/no-such-thing/")

    # Django's and the application's lines all go through the JSON formatter; only gunicorn's
    # own lines (start-up, access log) keep gunicorn's format.
    application_lines = [
        line
        for line in production_server.log().splitlines()
        if line and not line.startswith("[") and not line.startswith("127.0.0.1 - ")
    ]
    assert application_lines
    for line in application_lines:
        assert line.startswith("{"), line
        json.loads(line)


def test_readyz_is_ok_under_production_settings(production_server):
    response = httpx.get(f"{production_server.base_url}/readyz")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["down"]) == ("ok", [])
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "postgresql": "ok",
        "redis": "ok",
        "rabbitmq": "ok",
    }


def test_admin_pages_and_their_static_files_are_served(production_server):
    # given the admin login page, which links its stylesheet under its hashed name
    page = httpx.get(f"{production_server.base_url}/admin/login/")
    assert page.status_code == 200
    hashed = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.text)
    assert hashed is not None, page.text

    # when the browser fetches it, and the unhashed name
    stylesheet = httpx.get(f"{production_server.base_url}{hashed.group(1)}")
    plain = httpx.get(f"{production_server.base_url}/static/admin/css/base.css")

    # then gunicorn serves both (through whitenoise), the hashed one cacheable for good
    assert stylesheet.status_code == 200
    assert stylesheet.headers["Content-Type"].startswith("text/css")
    assert "immutable" in stylesheet.headers["Cache-Control"]
    assert "body" in stylesheet.text
    assert plain.status_code == 200
    assert "body" in plain.text


def test_api_docs_are_served_with_their_static_files(production_server):
    docs = httpx.get(f"{production_server.base_url}/api/docs/")
    assert docs.status_code == 200
    scripts = re.findall(r'src="(/static/drf_spectacular_sidecar/[^"]+\.js)"', docs.text)
    assert scripts, docs.text

    for script in scripts:
        response = httpx.get(f"{production_server.base_url}{script}")
        assert response.status_code == 200, script
        assert len(response.content) > 1000, script
