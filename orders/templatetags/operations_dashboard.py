"""The operations dashboard on the admin index.

It lives in ``orders`` because it shows order figures beside the plumbing's (``core`` may not
import ``orders``). Every reading is cached a few seconds and none raises when RabbitMQ is down.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.urls import reverse

from core.admin_tools import duration_display
from core.charts import bar_chart_count, bar_chart_svg
from core.readings import outbox_backlog, queue_depths
from orders.activity import DAY_BUCKET_MINUTES, ActivityWindow, activity_charts, minute_start
from orders.models import ActivityCount
from orders.selectors import order_desk_stats

# Series drawn in the alert colour: each of their bars is something that went wrong.
ALERT_SERIES = {ActivityCount.Series.REFUSED_SOLD_OUT, ActivityCount.Series.DEAD_LETTERED}

register = template.Library()


@register.inclusion_tag("admin/operations_dashboard.html", takes_context=True)
def operations_dashboard(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    if not request.user.has_perm("orders.view_order"):
        return {"visible": False}
    stats = order_desk_stats()
    depths = queue_depths()
    backlog = outbox_backlog()
    charts = activity_charts()
    orders_url = reverse("admin:orders_order_changelist")
    return {
        "visible": True,
        "charts_end": charts.end,
        "hour_charts": [_chart(w, end=charts.end, bucket=timedelta(minutes=1)) for w in charts.hour],
        "day_charts": [_chart(w, end=charts.day_end, bucket=timedelta(minutes=DAY_BUCKET_MINUTES)) for w in charts.day],
        "statuses": [
            (status, count, f"{orders_url}?status__exact={status}") for status, count in stats.per_status.items()
        ],
        "created_last_hour": stats.created_last_hour,
        "oldest_pending": duration_display(stats.oldest_pending_age_seconds)
        if stats.oldest_pending_created_at
        else "none pending",
        "work_queues": [d for d in depths if not d.dead_letter],
        "dead_letter_queues": [d for d in depths if d.dead_letter],
        "broker_unavailable": all(d.messages is None for d in depths),
        "outbox_unpublished": backlog.unpublished,
        "outbox_lag": duration_display(backlog.oldest_age_seconds) if backlog.oldest_created_at else "none waiting",
        "outbox_url": reverse("admin:core_outboxmessage_changelist"),
        "dead_letters_url": reverse("admin:core_deadletter_changelist")
        if request.user.has_perm("core.view_deadletter")
        else None,
    }


def _chart(window: ActivityWindow, *, end: datetime, bucket: timedelta) -> dict[str, Any]:
    known = [v for v in window.values if v is not None]
    show: Callable[[float], str]
    if window.series == ActivityCount.Series.OUTBOX_LAG_SECONDS:
        caption = f"worst {duration_display(max(known))}" if known else "no data"
        show = duration_display
    else:
        caption = f"{sum(known):,} in all" if known else "no data"
        show = bar_chart_count
    return {
        "series": window.series,
        "label": window.label,
        "caption": caption,
        "svg": bar_chart_svg(
            window.values,
            end=minute_start(end),
            bucket=bucket,
            title=window.label,
            show=show,
            tone="alert" if window.series in ALERT_SERIES else "normal",
        ),
    }
