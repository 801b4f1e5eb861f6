"""Business operations of the notifications app (writes); reads are in ``selectors``."""

from notifications.attempts import Outcome, SendResult
from notifications.services.emails import email_notification_send
from notifications.services.publishing import (
    Notification,
    notifications_fan_out,
    notifications_publish,
)
from notifications.services.webhooks import webhook_delivery_send, webhook_endpoint_create

__all__ = [
    "Notification",
    "Outcome",
    "SendResult",
    "email_notification_send",
    "notifications_fan_out",
    "notifications_publish",
    "webhook_delivery_send",
    "webhook_endpoint_create",
]
