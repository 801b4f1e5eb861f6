"""The customer e-mail of an event, as a message: rendered from templates/notifications/email/.

Each event type that mails the customer has three templates, named after it with the dot
replaced (``order.reserved`` -> ``order_reserved``): ``<name>_subject.txt``, ``<name>.txt`` and
``<name>.html``. They get ``order`` (the event's payload, its timestamps as datetimes),
``event_type`` and ``event_id``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime

from notifications.models import EmailNotification

TEMPLATE_DIR = "notifications/email"
_ORDER_TIMESTAMPS = ("created_at", "updated_at", "reserved_at", "expires_at", "paid_at")


def email_template_name(event_type: str, suffix: str) -> str:
    return f"{TEMPLATE_DIR}/{event_type.replace('.', '_')}{suffix}"


def email_context(*, event_type: str, event_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    order = dict(payload)
    for field in _ORDER_TIMESTAMPS:
        if isinstance(order.get(field), str):
            order[field] = parse_datetime(order[field])
    return {"order": order, "event_type": event_type, "event_id": event_id}


def email_message_build(*, notification: EmailNotification) -> EmailMultiAlternatives:
    event = notification.event
    context = email_context(event_type=event.event_type, event_id=str(event.id), payload=event.payload)
    subject = " ".join(render_to_string(email_template_name(event.event_type, "_subject.txt"), context).split())
    text = render_to_string(email_template_name(event.event_type, ".txt"), context)
    html = render_to_string(email_template_name(event.event_type, ".html"), context)
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].rstrip(">") or "localhost"
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient],
        # The same Message-ID on every attempt lets mail systems drop a copy sent twice.
        headers={"Message-ID": f"<notification-{event.id}@{domain}>"},
    )
    message.attach_alternative(html, "text/html")
    return message
