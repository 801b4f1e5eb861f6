from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from knox.models import AbstractAuthToken


class OutboxMessage(models.Model):
    """A task to publish, written in the same transaction as the business change it follows.

    The row's id is also the Celery task id, so every publication of it is the same message
    as far as consumers are concerned.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # The W3C traceparent of the span that wrote the row (core/tracing.py), so its publish, and
    # the task's run, continue that trace whoever publishes it and whenever; empty when not tracing.
    # A database default too, so the processes of the previous release, which do not name the
    # column, can still write rows while a deploy rolls out.
    traceparent = models.CharField(max_length=55, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            # The relay only ever looks for unpublished rows, oldest first.
            models.Index(
                fields=["created_at"],
                condition=Q(published_at__isnull=True),
                name="outbox_unpublished_idx",
            ),
            models.Index(fields=["published_at"], name="outbox_published_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}{self.args} ({'published' if self.published_at else 'pending'})"


class IdempotencyKey(models.Model):
    """The first successful answer to a request sent with an ``Idempotency-Key`` header."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_at_idx")]

    def __str__(self) -> str:
        return f"{self.key} ({self.response_status})"


class WorkerHeartbeat(models.Model):
    """Written by a worker when asked to (``manage.py ping_worker``): proof the pipeline runs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.id} by {self.worker or '-'}"


class TaskFailure(models.Model):
    """A task that failed for good: its message was rejected and went to a dead-letter queue.

    Written by the app's base task (core.failures) so operators can see why a dead letter died;
    ``manage.py dlq list`` shows the latest failure of each dead-lettered task id.
    """

    task_id = models.CharField(max_length=255)
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=200, blank=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    retries = models.PositiveIntegerField(default=0)
    error = models.TextField()
    traceback = models.TextField(blank=True)
    failed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["task_id", "-failed_at"], name="task_failure_task_idx"),
            models.Index(fields=["-failed_at"], name="task_failure_failed_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id}]: {self.error[:80]}"


class DeadLetter(models.Model):
    """No table: the admin's handle on the dead-letter queues, which live in RabbitMQ.

    It exists for its permissions: ``view`` to list dead letters in the admin, ``replay`` and
    ``purge`` to act on them (core/dead_letters.py does the work, as for ``manage.py dlq``).
    """

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("replay_deadletter", "Can replay dead letters to their queue"),
            ("purge_deadletter", "Can purge dead letters for good"),
        ]

    def __str__(self) -> str:
        return "dead letters"


class ApiToken(AbstractAuthToken):
    """An API token as django-rest-knox keeps it: only a SHA-512 digest of the token (the token
    itself is shown once, to whoever logged in), its first characters to find it, an expiry.

    ``password_fingerprint`` is the user's session hash (an HMAC of their password hash, as
    Django's sessions keep) when the token was issued: any change of the password changes it, and
    a token whose fingerprint no longer matches is refused (core/tokens.py), however the password
    was changed (API, admin, ``changepassword``).
    """

    password_fingerprint = models.CharField(max_length=128)

    def __str__(self) -> str:
        # knox's own shows the digest; a token is named by whose it is and when it was issued.
        return f"API token of {self.user} issued {self.created:%Y-%m-%d %H:%M}"

    class Meta:
        indexes = [models.Index(fields=["expiry"], name="apitoken_expiry_idx")]  # the prune's


class AuditEntry(models.Model):
    """One staff action: who, what, on which object, when, and the object before and after.

    Written by :func:`core.audit.audit_record` in the transaction of the change it records, so
    an entry exists exactly when its change does. Read-only in the admin.
    """

    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The actor's username when it acted (kept if the user is deleted); "manage.py ..." for a command.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)  # "order.refund", "stock.adjust", "dead_letter.purge"...
    target_type = models.CharField(max_length=64)  # "order", "product", "webhook_endpoint", "dead_letter"
    target_id = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="audit_newest_idx"),
            models.Index(fields=["target_type", "target_id", "-created_at"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target_type} {self.target_id}"
        )
