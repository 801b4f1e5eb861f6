"""Helpers for admin page tests: query counting and the cached operational readings."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.readings import reading_cache_key

OPERATIONS_READINGS = [
    reading_cache_key(key) for key in ("queue_depths", "outbox_backlog", "order_desk_stats", "activity_charts")
]


def queries_for(client: Client, url: str) -> int:
    """How many SQL queries one GET of ``url`` costs (it must answer 200)."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(captured)


def admin_action(client: Client, changelist_url: str, action: str, ids: list[int]) -> list[str]:
    """Run an admin action on ``ids`` from a changelist; returns the messages shown after it."""
    response = client.post(changelist_url, {"action": action, "_selected_action": ids}, follow=True)
    return [str(m) for m in response.context["messages"]]


def forget_operations_readings() -> None:
    """Drop the dashboard's cached readings so the next page reads the services again."""
    cache.delete_many(OPERATIONS_READINGS)
