"""The PostgreSQL backend's health check of a kept connection (config/database/base.py)."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def terminate(pid: int) -> None:
    """End a backend from another connection, as a restart or an operator would."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"],
        autocommit=True,
    ) as other:  # fmt: skip
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_kept_connection_is_usable_without_a_query_while_the_server_keeps_it():
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pid = connection.connection.info.backend_pid

    assert connection.is_usable()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] == pid


def test_a_connection_the_server_ended_is_replaced_before_the_next_requests_first_query():
    # given a kept connection whose backend the server has ended
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.05)  # the server's goodbye is on its way

    # when the next request starts (Django checks a kept connection before its first query)
    assert not connection.is_usable()
    connection.health_check_done = False
    connection.close_if_health_check_failed()

    # then its first query runs on a new connection instead of failing
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
