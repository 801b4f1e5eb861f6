"""Every response names its request id; development logs are one readable line per record."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

from tests.processes import ROOT


def test_a_callers_request_id_is_returned(client):
    request_id = str(uuid.uuid4())

    response = client.get("/healthz", HTTP_X_REQUEST_ID=request_id)

    assert response["X-Request-ID"] == request_id


def test_a_request_without_an_id_gets_a_new_one(client):
    first = client.get("/healthz")
    second = client.get("/healthz")

    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_request_id_that_is_not_a_uuid_is_replaced(client):
    # given an id that would not fit the outbox's request_id column (64 characters)
    response = client.get("/healthz", HTTP_X_REQUEST_ID="x" * 100)

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


# Runs under the development settings in a process of its own, so that Django's own logging
# configuration is set up exactly as it is by manage.py and gunicorn.
LOG_A_REQUEST = """
import logging
import django

django.setup()
from django.test import Client

logging.getLogger("orders.example").info("outside any request")
Client(HTTP_HOST="localhost").get("/api/v1/no-such-thing/", HTTP_X_REQUEST_ID="{request_id}")
"""


def test_development_logs_are_readable_lines_with_the_request_id(service_env):
    request_id = str(uuid.uuid4())
    env = {**service_env, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DJANGO_DEBUG": "true"}
    env.pop("LOG_FORMAT", None)

    result = subprocess.run(
        [sys.executable, "-c", LOG_A_REQUEST.format(request_id=request_id)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    timestamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    outside = rf"{timestamp} INFO \[-\] orders\.example: outside any request"
    assert any(re.fullmatch(outside, line) for line in lines), lines
    # once, in this format: Django's own console handler (on when DEBUG is) must not repeat it
    [not_found] = [line for line in lines if "Not Found: /api/v1/no-such-thing/" in line]
    assert re.fullmatch(
        rf"{timestamp} WARNING \[{request_id}\] django\.request: Not Found: /api/v1/no-such-thing/", not_found
    )
