"""Business operations of the notifications app (writes); reads are in ``selectors``."""

from notifications.attempts import Outcome, SendResult
from notifications.services.emails import EmailBatch, email_notification_send, email_notifications_send
from notifications.services.publishing import (
    Notification,
    notifications_fan_out,
    notifications_publish,
)
from notifications.services.webhooks import webhook_delivery_send, webhook_endpoint_create

__all__ = [
    "EmailBatch",
    "Notification",
    "Outcome",
    "SendResult",
    "email_notification_send",
    "email_notifications_send",
    "notifications_fan_out",
    "notifications_publish",
    "webhook_delivery_send",
    "webhook_endpoint_create",
]
