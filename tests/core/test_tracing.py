"""Tracing off (no OTLP endpoint) is a true no-op; the trace itself is in tests/flows/test_tracing.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.db import connection, transaction

from config.settings.base import build_logging
from core import tracing
from core.models import OutboxMessage
from core.outbox import outbox_enqueue
from tests.processes import HEARTBEAT_TASK, ROOT

# A request and a log line in a process of its own, without OTEL_EXPORTER_OTLP_ENDPOINT: neither
# the tracing SDK, nor an exporter, nor an instrumentation may even be imported, nor the middleware
# be there. (redis-py imports OpenTelemetry's metrics SDK, and with it the API, whenever they are
# installed, for an observability of its own that nothing here turns on.)
TRACING_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation", "opentelemetry.exporter")
UNTRACED_PROCESS = f"""
import json, logging, sys
import django

django.setup()
from django.conf import settings
from django.test import Client

response = Client(HTTP_HOST="localhost").get("/api/v1/no-such-thing/")
logging.getLogger("orders.example").warning("a line")
loaded = sorted(name for name in sys.modules if name.startswith({TRACING_MODULES!r}))
loaded += [name for name in settings.MIDDLEWARE if "opentelemetry" in name]
print(json.dumps({{"enabled": settings.TRACING_ENABLED, "status": response.status_code, "loaded": loaded}}))
"""


def test_without_an_endpoint_no_tracing_is_loaded_and_json_lines_say_no_trace(service_env):
    env = {key: value for key, value in service_env.items() if not key.startswith("OTEL_")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", LOG_FORMAT="json")

    done = subprocess.run(
        [sys.executable, "-c", UNTRACED_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"enabled": False, "status": 404, "loaded": []}
    line = json.loads(next(line for line in done.stderr.splitlines() if '"a line"' in line))
    assert (line["trace_id"], line["span_id"]) == (None, None)


@pytest.mark.django_db
def test_without_tracing_an_outbox_row_keeps_no_trace_context_and_a_publish_adds_no_header():
    assert not tracing.tracing_enabled()  # the test settings set no endpoint

    with transaction.atomic():
        message_id = outbox_enqueue(task_name=HEARTBEAT_TASK, args=["x"])

    assert OutboxMessage.objects.get(pk=message_id).traceparent == ""
    with tracing.outbox_publish_span(task_name=HEARTBEAT_TASK, task_id="x", traceparent="") as headers:
        assert dict(headers) == {}
    with tracing.client_span("POST", {"http.request.method": "POST"}) as span:
        assert span is None
    assert tracing.traceparent_current() == "" and tracing.trace_ids_current() is None


def test_text_lines_show_the_trace_id_only_when_tracing_is_on():
    def text_format(trace_ids: bool) -> str:
        formatters = build_logging("text", "INFO", trace_ids=trace_ids)["formatters"]
        return formatters["text"]["format"]  # type: ignore[index]

    assert text_format(False) == "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
    assert text_format(True) == "%(asctime)s %(levelname)s [%(request_id)s trace=%(trace_id)s] %(name)s: %(message)s"


@pytest.mark.django_db
def test_the_previous_release_can_still_write_outbox_rows_without_naming_the_new_column():
    # as a web process of the release before this column, during a deploy, writes a row
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO core_outboxmessage (id, task_name, args, kwargs, request_id, created_at, attempts, last_error)"
            " VALUES (gen_random_uuid(), %s, '[]', '{}', '', now(), 0, '')",
            [HEARTBEAT_TASK],
        )

    assert OutboxMessage.objects.get(task_name=HEARTBEAT_TASK).traceparent == ""
