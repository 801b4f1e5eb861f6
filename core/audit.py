"""The audit trail of staff actions (``core.models.AuditEntry``).

Every staff action that changes something records who did it, what, to which object, when, and
the object's relevant fields before and after: stock adjustments, order actions, product and
webhook endpoint changes, dead-letter replays and purges. Secrets are never recorded.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django_guid import get_guid

from core.models import AuditEntry
from core.retention import rows_prune

# The longest text kept of one target id (several dead letters' ids, say).
MAX_TARGET_ID = 255


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """``value`` with Decimals, datetimes and the like as the JSON strings the API shows."""
    if value is None:
        return None
    result: dict[str, Any] = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    return result


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target_type: str,
    target_id: object = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_name: str = "",
) -> AuditEntry:
    """Record one staff action; call in the transaction of the change it records.

    ``actor`` is the user who acted (None for a management command, named by ``actor_name``).
    """
    user = actor if isinstance(actor, User) else None
    return AuditEntry.objects.create(
        actor=user,
        actor_name=(user.get_username() if user is not None else actor_name) or "unknown",
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:MAX_TARGET_ID],
        before=_jsonable(before),
        after=_jsonable(after),
        request_id=(get_guid() or "")[:64],
    )


def audit_entry_prune(*, older_than_days: float) -> int:
    """Delete entries older than the audit's retention; returns how many."""
    threshold = timezone.now() - timedelta(days=older_than_days)
    return rows_prune(AuditEntry.objects.filter(created_at__lt=threshold), age_field="created_at")
