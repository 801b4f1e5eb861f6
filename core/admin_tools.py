"""Admin helpers shared by the apps."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest
from django.utils.functional import cached_property

# Tables estimated above this many rows are not counted exactly on unfiltered list pages.
EXACT_COUNT_LIMIT = 10_000


class EstimatedCountPaginator(Paginator):
    """Use PostgreSQL's row estimate for large unfiltered tables instead of ``COUNT(*)``.

    The admin counts the whole table on every list page; at hundreds of thousands of orders
    that scan costs more than the page itself. Filtered lists are still counted exactly.
    """

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [self.object_list.model._meta.db_table],  # type: ignore[attr-defined]
                )
                row = cursor.fetchone()
            if row and row[0] > EXACT_COUNT_LIMIT:
                return int(row[0])
        return super().count


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the system: staff look, the system writes."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def duration_display(seconds: float | None) -> str:
    """A duration as operators read it: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
