"""The operations dashboard on the admin index.

It lives in ``orders`` because it shows order figures beside the plumbing's (``core`` may not
import ``orders``). Every reading is cached a few seconds and none raises when RabbitMQ is down.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from core.admin_tools import duration_display
from core.readings import outbox_backlog, queue_depths
from orders.selectors import order_desk_stats

register = template.Library()


@register.inclusion_tag("admin/operations_dashboard.html", takes_context=True)
def operations_dashboard(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    if not request.user.has_perm("orders.view_order"):
        return {"visible": False}
    stats = order_desk_stats()
    depths = queue_depths()
    backlog = outbox_backlog()
    orders_url = reverse("admin:orders_order_changelist")
    return {
        "visible": True,
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
