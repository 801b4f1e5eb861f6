"""Sentry reporting: on with SENTRY_DSN, with the Django and Celery integrations; off without."""

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from tests.processes import ROOT

pytestmark = pytest.mark.django_db

REPORT = """
import sentry_sdk
client = sentry_sdk.get_client()
print(sorted(client.integrations))
try:
    raise RuntimeError("reported from a Django process")
except RuntimeError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"""


class SentryIngest(BaseHTTPRequestHandler):
    """Stands in for Sentry's ingest endpoint: records what reached it."""

    received: list[tuple[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        SentryIngest.received.append((self.path, self.headers.get("X-Sentry-Auth", "")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ingest():
    SentryIngest.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SentryIngest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_errors_are_reported_to_sentry_when_a_dsn_is_set(service_env, ingest):
    # given a process started with SENTRY_DSN
    dsn = f"http://publickey@127.0.0.1:{ingest.server_port}/42"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", REPORT],
        cwd=ROOT, env={**service_env, "SENTRY_DSN": dsn}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    # then Sentry runs with the Django and Celery integrations, and the error reached it
    assert "'celery'" in result.stdout and "'django'" in result.stdout, result.stdout
    assert ingest and SentryIngest.received, "nothing reached the Sentry endpoint"
    path, auth = SentryIngest.received[0]
    assert path == "/api/42/envelope/"
    assert "sentry_key=publickey" in auth


def test_sentry_is_off_without_a_dsn():
    # the test settings run without SENTRY_DSN
    assert not sentry_sdk.get_client().is_active()
