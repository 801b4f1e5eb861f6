"""Admin helpers shared by the apps."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from core.counting import COUNT_LIMIT, count_at_most

# The largest primary key (bigint): a longer number typed in a search box is no id, not an error.
MAX_ID = 2**63 - 1


class BoundedCountPaginator(Paginator):
    """The admin's paginator for tables that grow: it counts at most ``COUNT_LIMIT`` rows.

    Django's admin counts every row its filters match (``COUNT(*)``) for each list page, which
    over millions of orders costs seconds. Here a list with more rows than the limit says so
    (``10000+ orders``, core.counting.CountAtLeast) and pages through its first ``COUNT_LIMIT``
    rows, newest first; older rows are reached through the list's filters and search, not by an
    offset that would read every row it skips. With ``show_full_result_count = False`` the admin
    counts nothing else.
    """

    limit = COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            return count_at_most(self.object_list, limit=self.limit)
        return super().count


class BoundedCountAdmin(admin.ModelAdmin):
    """A list over a table that grows: its count bounded, and no facet counts."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    # Facets count the rows of every filter choice, each a COUNT(*) over the table.
    show_facets = admin.ShowFacets.NEVER


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
