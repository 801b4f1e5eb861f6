"""The operations dashboard in a real browser: the charts of the last hour and day, drawn by the server."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

from orders.activity import _counts_add, activity_rollup, minute_start
from orders.models import ActivityCount
from tests.factories import StaffFactory
from tests.orders.activity_history import activity_history

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pass-for-tests"  # tests.factories.UserFactory's
WAIT_SECONDS = 15


def a_day_of_activity(now):
    """A shop's day: intake rising to an evening peak, most orders reserved, a few expired, a
    flash sale 40 minutes ago with its sold-out refusals, and one bad hour of dead letters."""
    placed, reserved, expired, failed = {}, {}, {}, {}
    for minutes_ago in range(1, 24 * 60):
        at = now - timedelta(minutes=minutes_ago)
        rate = 2 + 2 * math.sin(minutes_ago / 1440 * 2 * math.pi) ** 2 + (12 if 38 <= minutes_ago <= 44 else 0)
        placed[at] = round(rate)
        reserved[at + timedelta(seconds=2)] = round(rate) - 1
        if minutes_ago % 45 == 1:
            expired[at + timedelta(seconds=3)] = 1
        if 300 <= minutes_ago < 360 and minutes_ago % 4 == 0:
            failed[at] = 2
    return placed, reserved, expired, failed


def past_samples(now):
    """What the web processes and earlier rollups wrote and no row can tell again: the sold-out
    refusals of the flash sale, and the outbox lag sampled each minute (stuck for 20 minutes
    three hours ago, while RabbitMQ was down)."""
    Series = ActivityCount.Series
    refusals = Counter({(minute_start(now - timedelta(minutes=m)), Series.REFUSED_SOLD_OUT): 25 for m in range(38, 45)})
    lags = [
        (minute_start(now - timedelta(minutes=m)), 60 * (200 - m) if 180 <= m < 200 else 1 + m % 3)
        for m in range(2, 24 * 60)
    ]
    _counts_add(refusals + Counter({(minute, Series.OUTBOX_LAG_SECONDS): lag for minute, lag in lags}))


def test_an_operator_sees_the_last_hour_and_day_drawn_on_the_dashboard(admin_web, browser, screenshot):
    # given a day of activity counted by the rollup, with what only running processes could record
    operator = StaffFactory(is_superuser=True)
    now = timezone.now()
    placed, reserved, expired, failed = a_day_of_activity(now)
    activity_history(customer=operator, placed=placed, reserved=reserved, expired=expired, failed=failed)
    past_samples(now)
    activity_rollup(now=now)
    cache.clear()  # the dashboard's cached readings
    wait = WebDriverWait(browser, WAIT_SECONDS)

    # when the operator logs in
    browser.get(f"{admin_web.base_url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(operator.username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "activity-charts")))

    # then each series has its hour and day chart, with bars the browser laid out
    for series in ActivityCount.Series.values:
        for window in ("hour", "day"):
            chart = browser.find_element(By.ID, f"chart-{window}-{series}")
            svg = chart.find_element(By.CSS_SELECTOR, "svg")
            assert svg.size["width"] > 150 and svg.size["height"] > 30, (series, window, svg.size)
    day_placed = browser.find_element(By.ID, "chart-day-placed")
    assert len(day_placed.find_elements(By.CSS_SELECTOR, "rect")) == 96
    assert "in all" in day_placed.text
    browser.execute_script("document.getElementById('activity-charts').scrollIntoView()")
    path = screenshot("admin-dashboard-charts")
    assert path.stat().st_size > 0
