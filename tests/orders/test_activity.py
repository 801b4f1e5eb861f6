"""The per-minute activity the dashboard's charts draw: counted from indexed rows by the rollup,
sold-out refusals counted in memory by the web processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import OutboxMessage
from orders import activity
from orders.activity import ACTIVITY_RETENTION, activity_charts, activity_rollup, minute_start
from orders.models import ActivityCount
from tests.factories import UserFactory, make_product
from tests.orders.activity_history import activity_history

pytestmark = pytest.mark.django_db

Series = ActivityCount.Series


@pytest.fixture(autouse=True)
def no_cached_charts_or_tally(monkeypatch):
    cache.clear()
    monkeypatch.setattr(activity, "_tally", activity._Tally())
    yield
    cache.clear()


def counts(series: str) -> dict:
    return dict(ActivityCount.objects.filter(series=series).values_list("minute", "value"))


def test_the_rollup_counts_each_settled_minute_from_the_rows_and_samples_the_outbox_lag():
    # given orders, reservations, expiries and dead letters in two past minutes, and a backlog
    now = minute_start(timezone.now()) + timedelta(seconds=45)
    m1, m2 = minute_start(now) - timedelta(minutes=3), minute_start(now) - timedelta(minutes=2)
    activity_history(
        customer=UserFactory(),
        placed={m1 + timedelta(seconds=5): 4, m2 + timedelta(seconds=59): 2},
        reserved={m1 + timedelta(seconds=30): 3},
        expired={m2 + timedelta(seconds=1): 1},
        failed={m2 + timedelta(seconds=2): 2},
    )
    OutboxMessage.objects.create(task_name="t", created_at=timezone.now() - timedelta(seconds=90))

    # when the rollup runs
    minutes = activity_rollup(now=now)

    # then each minute has its counts (zeros included), and the lag was sampled now
    assert minutes == 24 * 60  # the first run fills the last day
    assert (counts(Series.PLACED)[m1], counts(Series.PLACED)[m2]) == (4, 2)
    assert (counts(Series.RESERVED)[m1], counts(Series.RESERVED)[m2]) == (3, 0)
    assert (counts(Series.EXPIRED)[m1], counts(Series.EXPIRED)[m2]) == (0, 1)
    assert counts(Series.DEAD_LETTERED)[m2] == 2
    assert counts(Series.REFUSED_SOLD_OUT)[m1] == 0
    assert 85 <= counts(Series.OUTBOX_LAG_SECONDS)[minute_start(now)] <= 95
    # the minute still running (and the one before, until 30 s after it ended) is not counted yet
    assert minute_start(now) not in counts(Series.PLACED)


def test_a_second_run_recounts_only_the_last_minutes_and_changes_nothing_counted(django_assert_max_num_queries):
    now = minute_start(timezone.now())
    late = now - timedelta(minutes=2, seconds=50)
    activity_history(customer=UserFactory(), placed={late: 2})
    activity_rollup(now=now)
    before = counts(Series.PLACED)

    # when the next run comes a minute later, and a late commit added an order to a counted minute
    activity_history(customer=UserFactory(), placed={late: 1})
    with CaptureQueriesContext(connection) as queries:
        minutes = activity_rollup(now=now + timedelta(minutes=1))

    # then it recounted the last three minutes only (a bounded read), taking the late order
    assert minutes == 3
    assert counts(Series.PLACED)[minute_start(late)] == 3
    assert {m: v for m, v in counts(Series.PLACED).items() if m != minute_start(late)} == {
        m: v for m, v in before.items() if m != minute_start(late)
    } | {minute_start(now) - timedelta(minutes=1): 0}
    assert len(queries) <= 12


def test_rows_older_than_the_retention_are_deleted():
    old = minute_start(timezone.now()) - ACTIVITY_RETENTION - timedelta(minutes=5)
    ActivityCount.objects.create(minute=old, series=Series.PLACED, value=7)

    activity_rollup()

    assert not ActivityCount.objects.filter(minute=old).exists()


@pytest.mark.django_db(transaction=True)  # written after the answer, outside any transaction
def test_sold_out_refusals_are_counted_in_memory_and_added_to_their_minute_after_the_answer(client_for):
    # given a product with nothing left, and a count already in the current minute's row
    make_product("GONE-1", stock=0)
    ActivityCount.objects.create(minute=minute_start(timezone.now()), series=Series.REFUSED_SOLD_OUT, value=5)
    api = client_for(UserFactory())

    # when two orders are refused as sold out, the second before the next write is due
    answers = [
        api.post("/api/v1/orders/", {"items": [{"sku": "GONE-1", "quantity": 1}]}, format="json") for _ in range(2)
    ]

    # then both were refused; the first answer's end wrote its count, the second waits in memory
    assert [a.status_code for a in answers] == [409, 409]
    assert sum(counts(Series.REFUSED_SOLD_OUT).values()) == 6
    assert sum(activity._tally.pending.values()) == 1
    # and the next write adds it to its row rather than replacing the row
    activity._tally.flush()
    assert sum(counts(Series.REFUSED_SOLD_OUT).values()) == 7


@pytest.mark.django_db(transaction=True)
def test_a_failed_write_keeps_the_counts_for_the_next(monkeypatch):
    def unavailable(counts):
        raise ConnectionError("PostgreSQL is down")

    activity.activity_sold_out_count()
    with monkeypatch.context() as down:
        down.setattr(activity, "_counts_add", unavailable)
        activity._tally.flush()

    assert sum(activity._tally.pending.values()) == 1
    activity._tally.flush()
    assert sum(counts(Series.REFUSED_SOLD_OUT).values()) == 1


def test_the_charts_read_an_hour_of_minutes_and_a_day_of_quarter_hours_with_gaps_for_no_data():
    # given a day of counted minutes but one hour missing (beat was stopped then)
    now = timezone.now()
    activity_history(customer=UserFactory(), placed={now - timedelta(minutes=40): 3, now - timedelta(hours=6): 4})
    activity_rollup(now=now)
    hole = minute_start(now) - timedelta(hours=3)
    ActivityCount.objects.filter(minute__gte=hole, minute__lt=hole + timedelta(hours=1)).delete()

    charts = activity_charts()

    placed_hour = next(w for w in charts.hour if w.series == Series.PLACED)
    placed_day = next(w for w in charts.day if w.series == Series.PLACED)
    assert len(placed_hour.values) == 60 and len(placed_day.values) == 96
    assert sum(v for v in placed_hour.values if v) == 3
    assert sum(v for v in placed_day.values if v) == 7
    assert placed_day.values.count(None) >= 3  # the missing hour: gaps, not zeros
    assert [w.series for w in charts.hour] == list(Series.values)
