"""Counting rows of tables that grow with history, at a cost that does not (invariant 11).

``COUNT(*)`` reads every row it counts: over ten million orders that is seconds, on every admin
page and every scrape. Here a count reads at most ``COUNT_LIMIT + 1`` rows (``LIMIT`` in a
subquery, served by the index of the filter), so it is exact up to the limit; above it, an
operator needs the size, not the last row, and PostgreSQL's planner estimate (from the table's
statistics, kept by autovacuum's ANALYZE; no row is read) gives it.

A filter without an index still reads the table until it has found ``COUNT_LIMIT + 1`` matches,
or to its end when there are fewer: counts are bounded by the indexes behind the filters, as
lists are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

# Exact up to here: ten thousand index entries are a few milliseconds to read; a figure this
# large is read as "many" whether it is exact or not.
COUNT_LIMIT = 10_000


class CountAtLeast(int):
    """A count that was stopped at its limit: it shows as ``10000+``, and computes as the limit."""

    def __str__(self) -> str:
        return f"{int(self)}+"


@dataclass(frozen=True)
class RowCount:
    value: int
    exact: bool  # False: more than the limit, and ``value`` is the planner's estimate

    def __str__(self) -> str:
        return str(self.value) if self.exact else f"about {self.value:,}"


def count_at_most(queryset: QuerySet[Any], *, limit: int = COUNT_LIMIT) -> int:
    """The number of rows of ``queryset``, or :class:`CountAtLeast` ``limit`` if there are more.

    Order ``queryset`` as the index that serves its filters is ordered (a list's own ordering):
    the count then walks that index and stops at the limit. Unordered, the planner may scan the
    table for the first rows it meets, which is cheap for a value it rightly expects to be
    frequent and reads the whole table for one it wrongly does.
    """
    counted = queryset[: limit + 1].count()
    return counted if counted <= limit else CountAtLeast(limit)


def row_estimate(queryset: QuerySet[Any]) -> int:
    """How many rows PostgreSQL's planner expects ``queryset`` to match; reads no row."""
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def count_bounded(queryset: QuerySet[Any], *, limit: int = COUNT_LIMIT) -> RowCount:
    """Exact up to ``limit`` rows; above it, the planner's estimate (at least ``limit + 1``).
    Order ``queryset`` as for :func:`count_at_most`."""
    counted = count_at_most(queryset, limit=limit)
    if not isinstance(counted, CountAtLeast):
        return RowCount(counted, exact=True)
    return RowCount(max(row_estimate(queryset), limit + 1), exact=False)
