from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.models import TaskFailure


@admin.register(TaskFailure)
class TaskFailureAdmin(admin.ModelAdmin):
    """Tasks that failed for good; their messages are in the dead-letter queues (manage.py dlq)."""

    list_display = ["failed_at", "task_name", "task_id", "queue", "retries", "error"]
    list_filter = ["queue", "task_name"]
    search_fields = ["task_id", "task_name", "error"]
    date_hierarchy = "failed_at"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
