"""Errors of the notifications app: domain errors (API answers) and task outcomes."""

from __future__ import annotations

from core.errors import DomainError


class UnsafeWebhookUrl(DomainError):
    code = "unsafe_webhook_url"


class InvalidEventTypes(DomainError):
    code = "invalid_event_types"


class NotificationGaveUp(Exception):
    """Raised by a task that gives up (permanent failure or attempts exhausted).

    The worker then rejects the message without requeue and RabbitMQ dead-letters it.
    """


class NotificationAttemptFailed(Exception):
    """The reason given to ``Task.retry``: this attempt failed and another one is scheduled."""


class NotResendable(DomainError):
    """A resend that could change nothing: already delivered, or to an endpoint turned off."""

    status_code = 409
    code = "not_resendable"


class AlreadyDelivered(NotResendable):
    """The notification was delivered: there is nothing to resend."""

    code = "already_delivered"


class CircuitChangeRefused(DomainError):
    code = "invalid_circuit_state"
