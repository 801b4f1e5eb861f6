from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone


class EventType(models.TextChoices):
    """``order.<state>`` for every order state of the contract."""

    ORDER_PENDING = "order.pending"
    ORDER_RESERVED = "order.reserved"
    ORDER_REJECTED = "order.rejected"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_PAID = "order.paid"
    ORDER_EXPIRED = "order.expired"
    ORDER_SHIPPED = "order.shipped"
    ORDER_REFUNDED = "order.refunded"
    ORDER_COMPLETED = "order.completed"


# Sent only on request (POST /api/v1/webhooks/endpoints/{id}/ping/): not subscribed to, never stored.
PING_EVENT_TYPE = "ping"


# Events that e-mail the customer (the list); the others only go to webhooks.
EMAIL_EVENT_TYPES = frozenset(
    {
        EventType.ORDER_RESERVED,
        EventType.ORDER_REJECTED,
        EventType.ORDER_PAID,
        EventType.ORDER_SHIPPED,
        EventType.ORDER_CANCELLED,
        EventType.ORDER_EXPIRED,
        EventType.ORDER_REFUNDED,
    }
)


class CircuitState(models.TextChoices):
    """An endpoint's circuit (notifications/services/circuit.py)."""

    CLOSED = "closed"  # deliveries are sent
    OPEN = "open"  # failing: deliveries wait, spending no attempts, until ``circuit_retry_at``
    HALF_OPEN = "half_open"  # one probe is being sent; the others wait for its outcome


class WebhookEndpoint(models.Model):
    """A merchant's URL subscribed to some event types, with its own signing secret."""

    url = models.URLField(max_length=2048)
    events = ArrayField(models.CharField(max_length=64, choices=EventType.choices))
    active = models.BooleanField(default=True)
    # Standard Webhooks format: "whsec_" + base64 of the HMAC key. Kept in clear because every
    # delivery is signed with it; shown to staff once, when the endpoint is created.
    secret = models.CharField(max_length=200, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    # The circuit: consecutive failed attempts, since when the endpoint has been failing, how
    # often it opened in a row (each cool-down is longer), and when the next probe may go.
    # (Database defaults: the previous release keeps creating endpoints during a deploy.)
    circuit_state = models.CharField(
        max_length=16, choices=CircuitState.choices, default=CircuitState.CLOSED, db_default=CircuitState.CLOSED
    )
    consecutive_failures = models.PositiveIntegerField(default=0, db_default=0)
    # How long those failed attempts held a sender, in all (slow failures open it sooner).
    consecutive_failure_seconds = models.FloatField(default=0, db_default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    circuit_openings = models.PositiveIntegerField(default=0, db_default=0)
    circuit_retry_at = models.DateTimeField(null=True, blank=True)
    # Set when the endpoint was deactivated for failing too long (staff were e-mailed).
    disabled_at = models.DateTimeField(null=True, blank=True)
    # After a rotation the previous secret signs too (a second signature) until it expires.
    previous_secret = models.CharField(max_length=200, blank=True, editable=False, db_default="", default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Deleted through the API: deactivated, and hidden from the API; its past deliveries keep it.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="webhook_endpoint_created_idx"),
            # notifications_publish and the fan-out look up the active endpoints subscribed to event types.
            GinIndex(fields=["events"], name="webhook_endpoint_events_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.url} ({'active' if self.active else 'inactive'})"


class NotificationEvent(models.Model):
    """Something happened to an order. Its id is the webhook-id receivers deduplicate on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=64, choices=EventType.choices)
    # The order as the API shows it, at the moment of the event.
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    # The order the event is about, and its place among that order's events (1, 2, ...), given
    # in the transaction that records it (notifications_publish). Null on events recorded
    # before events were numbered.
    order_id = models.BigIntegerField(null=True, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="notification_event_created_idx")]
        constraints = [
            # Also the index behind "the order's last sequence" when the next event is numbered.
            models.UniqueConstraint(
                fields=["order_id", "sequence"],
                name="notification_event_order_sequence",
                condition=models.Q(order_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"


class WebhookDelivery(models.Model):
    """One event to one endpoint. Its attempts are ``DeliveryAttempt`` rows."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        # The last attempt failed and another one is scheduled (``next_attempt_at``).
        FAILED = "failed"
        # Given up: the task message is in the dead-letter queue and can be replayed.
        DEAD_LETTERED = "dead_lettered"

    event = models.ForeignKey(NotificationEvent, on_delete=models.PROTECT, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    # The event's order and sequence, copied here so that "is an earlier event of this order
    # still on its way to this endpoint?" is one indexed lookup (webhook_delivery_blocking).
    order_id = models.BigIntegerField(null=True, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # One delivery per event and endpoint, however often the event is published.
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_unique_per_endpoint"),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="webhook_delivery_created_idx"),
            models.Index(fields=["status", "-created_at"], name="webhook_delivery_status_idx"),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint_idx"),
            models.Index(fields=["endpoint", "status", "-created_at"], name="webhook_delivery_ep_status_idx"),
            # Deliveries still on their way, by endpoint and order: what a later one waits for.
            models.Index(
                fields=["endpoint", "order_id", "sequence"],
                name="webhook_delivery_in_flight_idx",
                condition=models.Q(status__in=["pending", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP request of a delivery (or the reason none could be made)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The start of the response body (the rest is never read).
    response_body = models.TextField(blank=True)
    # The delay before the next attempt, when this one is retried.
    retry_delay_seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="delivery_attempt_unique_number"),
        ]
        # Attempts are pruned by age (notifications.services.retention).
        indexes = [models.Index(fields=["attempted_at"], name="delivery_attempt_at_idx")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.status_code or self.error}"


class EmailNotification(models.Model):
    """The e-mail one event sends to the order's address."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        DEAD_LETTERED = "dead_lettered"

    # One e-mail per event, however often the event is published.
    event = models.OneToOneField(NotificationEvent, on_delete=models.PROTECT, related_name="email")
    recipient = models.EmailField(max_length=254)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="email_created_idx"),
            models.Index(fields=["status", "-created_at"], name="email_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} to {self.recipient} ({self.status})"


class SendLease(models.Model):
    """Who is sending one notification right now, and until when (notifications/lock_objects.py)."""

    kind = models.CharField(max_length=32)  # which notification table
    object_id = models.BigIntegerField()
    holder = models.UUIDField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id"], name="send_lease_unique_notification"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} until {self.expires_at}"
