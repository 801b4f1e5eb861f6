"""What happened minute by minute, for the charts of the admin's operations dashboard.

The charts never count the big tables. ``activity_rollup`` (beat, every minute) writes one
``ActivityCount`` row per series and minute, each count read from an index over a few minutes:

- orders placed: ``Order.created_at`` (``order_created_idx``);
- reserved and expired: their transition events (the partial ``order_event_activity_idx``);
- dead-lettered tasks: the recorded failures (``TaskFailure.failed_at``);
- the outbox lag: a sample, the age of the oldest unpublished row when the rollup runs.

Each run recomputes the last ``RECOMPUTE`` settled minutes (a transaction may commit a row dated
a little earlier) and, after beat was stopped, catches up at most ``CATCH_UP``; recomputing
writes the same counts again, so two beats are harmless.

Sold-out refusals write nothing to count (that is their point), so each web process counts them
in memory and adds them to their minute's row at most every ``FLUSH_SECONDS``, after a request
has been answered (and when the process exits): one statement per process per few seconds,
never on the refusal's own path. A process killed with SIGKILL loses its last few seconds of
refusals, which a chart can afford.

The dashboard reads a day of rows at most (``activity_charts``), cached for a few seconds.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max
from django.db.models.functions import TruncMinute
from django.utils import timezone

from core.models import TaskFailure
from core.readings import cached_reading, outbox_backlog
from orders.models import ActivityCount, Order, OrderEvent, OrderStatus

logger = logging.getLogger(__name__)

Series = ActivityCount.Series
MINUTE = timedelta(minutes=1)
# A row dated before now minus this is taken as committed (transactions here last milliseconds).
SETTLE = timedelta(seconds=30)
# Minutes counted again by each run, for rows that committed after the minute was first counted.
RECOMPUTE = timedelta(minutes=3)
# After beat was stopped, the rollup fills at most the last day (what the charts show).
CATCH_UP = timedelta(days=1)
ACTIVITY_RETENTION = timedelta(days=8)
FLUSH_SECONDS = 10.0
CHARTS_CACHE_SECONDS = 15


def minute_start(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


# --- Rollup (beat) ----------------------------------------------------------------------------


def _counts_by_minute(queryset: Any, field: str) -> dict[datetime, int]:
    rows = queryset.annotate(minute=TruncMinute(field)).values("minute").annotate(n=Count("*")).order_by()
    return {row["minute"]: row["n"] for row in rows}


def activity_rollup(*, now: datetime | None = None) -> int:
    """Count the settled minutes not yet counted (and the last few again); returns the minutes."""
    now = now or timezone.now()
    end = minute_start(now - SETTLE)
    last = ActivityCount.objects.filter(series=Series.PLACED).aggregate(last=Max("minute"))["last"]
    start = max(end - CATCH_UP, min(last or end - CATCH_UP, end - RECOMPUTE))
    minutes = [start + MINUTE * n for n in range(int((end - start) / MINUTE))]

    placed = _counts_by_minute(Order.objects.filter(created_at__gte=start, created_at__lt=end), "created_at")
    events = (
        OrderEvent.objects.filter(
            kind=OrderEvent.Kind.TRANSITION,
            to_status__in=[OrderStatus.RESERVED, OrderStatus.EXPIRED],
            created_at__gte=start,
            created_at__lt=end,
        )
        .annotate(minute=TruncMinute("created_at"))
        .values("minute", "to_status")
        .annotate(n=Count("*"))
        .order_by()
    )
    transitions = {(row["minute"], row["to_status"]): row["n"] for row in events}
    failures = _counts_by_minute(TaskFailure.objects.filter(failed_at__gte=start, failed_at__lt=end), "failed_at")

    counted = [
        ActivityCount(minute=m, series=series, value=value)
        for m in minutes
        for series, value in (
            (Series.PLACED, placed.get(m, 0)),
            (Series.RESERVED, transitions.get((m, OrderStatus.RESERVED), 0)),
            (Series.EXPIRED, transitions.get((m, OrderStatus.EXPIRED), 0)),
            (Series.DEAD_LETTERED, failures.get(m, 0)),
        )
    ]
    backlog = outbox_backlog()
    lag = ActivityCount(
        minute=minute_start(now), series=Series.OUTBOX_LAG_SECONDS, value=round(backlog.oldest_age_seconds)
    )
    with transaction.atomic():
        ActivityCount.objects.bulk_create(
            [*counted, lag], update_conflicts=True, unique_fields=["minute", "series"], update_fields=["value"]
        )
        # A counted minute without a refusal: zero, unless a web process already added some.
        ActivityCount.objects.bulk_create(
            [ActivityCount(minute=m, series=Series.REFUSED_SOLD_OUT, value=0) for m in minutes], ignore_conflicts=True
        )
        ActivityCount.objects.filter(minute__lt=now - ACTIVITY_RETENTION).delete()
    return len(minutes)


# --- Sold-out refusals, counted in memory and added up by every web process ------------------


class _Tally:
    """Counts per (minute, series) kept in memory and added to their rows now and then."""

    def __init__(self) -> None:
        self.pending: Counter[tuple[datetime, str]] = Counter()
        self.next_flush = 0.0
        self.lock = threading.Lock()

    def add(self, series: str) -> None:
        with self.lock:
            self.pending[(minute_start(timezone.now()), series)] += 1

    def flush_if_due(self) -> None:
        if self.pending and time.monotonic() >= self.next_flush:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, Counter()
            self.next_flush = time.monotonic() + FLUSH_SECONDS
        if not pending:
            return
        try:
            _counts_add(pending)
        except Exception:  # PostgreSQL unavailable: keep the counts for the next flush
            logger.warning("Activity counts not written yet (%d kept for later)", sum(pending.values()), exc_info=True)
            with self.lock:
                oldest = timezone.now() - CATCH_UP
                self.pending.update({key: n for key, n in pending.items() if key[0] >= oldest})


_ADD_SQL = f"""
    INSERT INTO {ActivityCount._meta.db_table} (minute, series, value)
    SELECT * FROM unnest(%s::timestamptz[], %s::varchar[], %s::bigint[])
    ON CONFLICT (minute, series) DO UPDATE SET value = {ActivityCount._meta.db_table}.value + EXCLUDED.value
"""  # noqa: S608 - the table name is the model's, the values are parameters


def _counts_add(counts: Counter[tuple[datetime, str]]) -> None:
    keys = sorted(counts)  # one order for every process: two flushes never deadlock
    with connection.cursor() as cursor:
        cursor.execute(_ADD_SQL, [[k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys]])


_tally = _Tally()


def activity_sold_out_count() -> None:
    """Count an order refused as sold out (nothing else is written for it)."""
    _tally.add(Series.REFUSED_SOLD_OUT)


def activity_flush_if_due(**kwargs: Any) -> None:
    """After each request (``request_finished``, connected in OrdersConfig.ready): write the counts
    kept in memory if the last write was ``FLUSH_SECONDS`` ago. Outside any transaction."""
    if _tally.pending and not connection.in_atomic_block:
        _tally.flush_if_due()


def activity_flush() -> None:
    """Write the counts kept in memory now (as a process ends)."""
    _tally.flush()


atexit.register(activity_flush)


# --- What the dashboard draws --------------------------------------------------------------


@dataclass(frozen=True)
class ActivityWindow:
    """One series over a window: a value per bucket, None where nothing was recorded."""

    series: str
    label: str
    values: list[int | None]


@dataclass(frozen=True)
class ActivityCharts:
    end: datetime  # the end of the hour's last bucket: the last minute counted, plus one
    hour: list[ActivityWindow]  # 60 one-minute buckets
    day: list[ActivityWindow]  # 96 fifteen-minute buckets, the last ending at ``day_end``

    @property
    def day_end(self) -> datetime:
        return self.end - timedelta(minutes=self.end.minute % DAY_BUCKET_MINUTES)


HOUR_BUCKETS, DAY_BUCKETS, DAY_BUCKET_MINUTES = 60, 96, 15


def _window(
    rows: dict[tuple[datetime, str], int], series: str, *, end: datetime, buckets: int, size: int
) -> list[int | None]:
    values: list[int | None] = []
    for bucket in range(buckets):
        start = end - MINUTE * size * (buckets - bucket)
        found = [rows[(start + MINUTE * m, series)] for m in range(size) if (start + MINUTE * m, series) in rows]
        if not found:
            values.append(None)
        elif series == Series.OUTBOX_LAG_SECONDS:
            values.append(max(found))  # the worst lag of the bucket
        else:
            values.append(sum(found))
    return values


def _read_activity_charts() -> ActivityCharts:
    # The hour ends with the last minute counted; the day with the last whole fifteen minutes.
    last = ActivityCount.objects.filter(series=Series.PLACED).aggregate(last=Max("minute"))["last"]
    end = last + MINUTE if last is not None else minute_start(timezone.now() - SETTLE)
    day_end = ActivityCharts(end, [], []).day_end
    since = min(day_end - MINUTE * DAY_BUCKET_MINUTES * DAY_BUCKETS, end - MINUTE * HOUR_BUCKETS)
    # At most a day of rows: 6 series x 1,440 minutes, from the unique index on (minute, series).
    rows = {
        (minute, series): value
        for minute, series, value in ActivityCount.objects.filter(minute__gte=since).values_list(
            "minute", "series", "value"
        )
    }
    hour, day = [], []
    for series in Series:
        hour.append(
            ActivityWindow(series.value, series.label, _window(rows, series, end=end, buckets=HOUR_BUCKETS, size=1))
        )
        day_values = _window(rows, series, end=day_end, buckets=DAY_BUCKETS, size=DAY_BUCKET_MINUTES)
        day.append(ActivityWindow(series.value, series.label, day_values))
    return ActivityCharts(end=end, hour=hour, day=day)


def _charts_to_json(charts: ActivityCharts) -> list[Any]:
    windows = [[[w.series, w.label, w.values] for w in ws] for ws in (charts.hour, charts.day)]
    return [charts.end.isoformat(), *windows]


def _charts_from_json(row: list[Any]) -> ActivityCharts:
    hour, day = ([ActivityWindow(*w) for w in windows] for windows in row[1:])
    return ActivityCharts(datetime.fromisoformat(row[0]), hour, day)


def activity_charts() -> ActivityCharts:
    """The dashboard's series for the last hour and the last day, shared through the cache."""
    return cached_reading(
        "activity_charts",
        _read_activity_charts,
        to_json=_charts_to_json,
        from_json=_charts_from_json,
        seconds=CHARTS_CACHE_SECONDS,
    )
