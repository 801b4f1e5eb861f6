"""A circuit per merchant endpoint, kept in PostgreSQL (``WebhookEndpoint.circuit_*``).

- **closed**: deliveries are sent. ``WEBHOOK_CIRCUIT_FAILURES`` failed attempts in a row (any
  delivery; a timeout, a refused connection, 5xx, 408 or 429: the endpoint is not taking
  events) open it, or fewer when they were slow: failures in a row that held senders for
  ``WEBHOOK_CIRCUIT_FAILURE_SECONDS`` in all (by default two attempts that ran to the deadline).
  An endpoint that hangs costs the workers that much time, not five deadlines.
- **open**: deliveries wait, unsent, spending no attempts and never dead-lettered for it, until
  ``circuit_retry_at``. The cool-down is ``WEBHOOK_CIRCUIT_COOLDOWN_SECONDS`` the first time and
  doubles at each opening in a row, up to ``WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS`` (an hour).
- **half_open**: the cool-down is over; the first delivery due takes the probe (one conditional
  UPDATE, so exactly one), the others keep waiting. The probe answering (even 4xx: the endpoint
  is there) closes the circuit, and the waiting deliveries go, in sequence, when they next
  look (within seconds of the probe). The probe failing opens it again, for longer.

An endpoint failing for ``WEBHOOK_DISABLE_AFTER_HOURS`` (three days) is deactivated and staff
are e-mailed. Staff close or open a circuit by hand (:func:`webhook_endpoint_circuit_set`).

Every change is one statement or a short transaction on the endpoint row; nothing is held across
an HTTP request.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.audit import audit_record
from core.outbox import outbox_enqueue
from notifications.attempts import Verdict
from notifications.errors import CircuitChangeRefused
from notifications.lock_objects import webhook_endpoint_lock
from notifications.models import CircuitState, WebhookEndpoint

logger = logging.getLogger(__name__)

DISABLED_MAIL_TASK = "notifications.tasks.webhook_endpoint_disabled_mail_task"
# How soon a delivery looks again while another one is the probe.
PROBE_WAIT_SECONDS = 5
# Deliveries waiting for one cool-down spread their next look over this many seconds.
WAKE_JITTER_SECONDS = 5


# A closed circuit, failures forgotten: what a success, staff closing it and reactivating the
# endpoint all write.
CIRCUIT_CLOSED: dict[str, Any] = {
    "circuit_state": CircuitState.CLOSED,
    "consecutive_failures": 0,
    "consecutive_failure_seconds": 0,
    "failing_since": None,
    "circuit_openings": 0,
    "circuit_retry_at": None,
}


def circuit_close(endpoint: WebhookEndpoint) -> list[str]:
    """Set a (locked) endpoint's circuit closed, failures forgotten; returns the fields to save."""
    for field, value in CIRCUIT_CLOSED.items():
        setattr(endpoint, field, value)
    return list(CIRCUIT_CLOSED)


@dataclass(frozen=True)
class Admission:
    """Whether a delivery may be sent now (``wait_seconds`` None), and whether it is the probe."""

    wait_seconds: int | None = None
    probe: bool = False
    reason: str = ""


def circuit_cooldown_seconds(*, openings: int) -> int:
    """The cool-down after the ``openings``-th opening in a row (1 = the first)."""
    base = settings.WEBHOOK_CIRCUIT_COOLDOWN_SECONDS * 2 ** min(max(openings - 1, 0), 32)
    return int(min(base, settings.WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS))


def circuit_admit(*, endpoint_id: int, now: datetime) -> Admission:
    """May a delivery to this endpoint be sent now? Call holding the delivery's send lock,
    outside any transaction."""
    endpoint = WebhookEndpoint.objects.only("circuit_state", "circuit_retry_at").get(pk=endpoint_id)
    if endpoint.circuit_state == CircuitState.CLOSED:
        return Admission()
    retry_at = endpoint.circuit_retry_at or now
    if retry_at <= now:
        # The cool-down is over (or a probe's holder vanished): take the probe, if nobody did.
        probe_ends = now + timedelta(seconds=settings.NOTIFY_SEND_LEASE_SECONDS)
        taken = WebhookEndpoint.objects.filter(
            Q(circuit_retry_at__lte=now) | Q(circuit_retry_at__isnull=True),
            pk=endpoint_id,
            circuit_state__in=[CircuitState.OPEN, CircuitState.HALF_OPEN],
        ).update(circuit_state=CircuitState.HALF_OPEN, circuit_retry_at=probe_ends)
        if taken:
            return Admission(probe=True)
        return Admission(wait_seconds=PROBE_WAIT_SECONDS, reason="circuit half-open: another delivery is the probe")
    if endpoint.circuit_state == CircuitState.HALF_OPEN:
        return Admission(wait_seconds=PROBE_WAIT_SECONDS, reason="circuit half-open: another delivery is the probe")
    wait = int((retry_at - now).total_seconds()) + 1 + random.randint(0, WAKE_JITTER_SECONDS)  # noqa: S311
    return Admission(wait_seconds=wait, reason=f"circuit open until {retry_at.isoformat()}")


def circuit_record(*, endpoint_id: int, verdict: Verdict, now: datetime, seconds: float = 0) -> datetime | None:
    """Count an attempt's outcome (which took ``seconds``) on its endpoint's circuit. Returns
    when the next probe may go if the circuit is open after it (the attempt failed), else None.

    Call inside the transaction that records the attempt. A success on a healthy endpoint
    writes nothing (the row is not rewritten on every delivery).
    """
    if verdict is not Verdict.RETRY:  # the endpoint answered: it is there
        WebhookEndpoint.objects.filter(
            Q(consecutive_failures__gt=0) | ~Q(circuit_state=CircuitState.CLOSED), pk=endpoint_id
        ).update(**CIRCUIT_CLOSED)
        return None
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    endpoint.consecutive_failures += 1
    endpoint.consecutive_failure_seconds += seconds
    endpoint.failing_since = endpoint.failing_since or now
    fields = ["consecutive_failures", "consecutive_failure_seconds", "failing_since"]
    disable_before = now - timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    if endpoint.active and endpoint.failing_since <= disable_before:
        endpoint.active = False
        endpoint.disabled_at = now
        fields += ["active", "disabled_at"]
        outbox_enqueue(task_name=DISABLED_MAIL_TASK, args=[endpoint.pk])
        logger.warning("Webhook endpoint %s disabled: failing since %s", endpoint.pk, endpoint.failing_since)
    opens = endpoint.circuit_state == CircuitState.HALF_OPEN or (
        endpoint.circuit_state == CircuitState.CLOSED
        and (
            endpoint.consecutive_failures >= settings.WEBHOOK_CIRCUIT_FAILURES
            or endpoint.consecutive_failure_seconds >= settings.WEBHOOK_CIRCUIT_FAILURE_SECONDS
        )
    )
    if opens:
        endpoint.circuit_openings += 1
        endpoint.circuit_state = CircuitState.OPEN
        endpoint.circuit_retry_at = now + timedelta(
            seconds=circuit_cooldown_seconds(openings=endpoint.circuit_openings)
        )
        fields += ["circuit_openings", "circuit_state", "circuit_retry_at"]
        logger.warning(
            "Webhook endpoint %s circuit open until %s after %d failures",
            endpoint.pk,
            endpoint.circuit_retry_at,
            endpoint.consecutive_failures,
        )
    endpoint.save(update_fields=fields)
    return endpoint.circuit_retry_at if endpoint.circuit_state != CircuitState.CLOSED else None


def webhook_endpoint_circuit_set(*, endpoint_id: int, state: str, actor: Any) -> WebhookEndpoint:
    """Staff close a circuit (deliveries go again at their next look, failure counts forgotten)
    or open it (deliveries wait for a full cool-down, then a probe decides); audited as ``actor``'s."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        endpoint = webhook_endpoint_lock(endpoint_id=endpoint_id)
        before = {"circuit_state": endpoint.circuit_state, "circuit_retry_at": endpoint.circuit_retry_at}
        if state == CircuitState.CLOSED:
            circuit_close(endpoint)
        elif state == CircuitState.OPEN:
            endpoint.circuit_state = CircuitState.OPEN
            endpoint.circuit_openings = max(endpoint.circuit_openings, 1)
            endpoint.circuit_retry_at = now + timedelta(seconds=settings.WEBHOOK_CIRCUIT_COOLDOWN_MAX_SECONDS)
        else:
            raise CircuitChangeRefused(f"A circuit can be set to closed or open, not {state!r}.")
        endpoint.save(update_fields=list(CIRCUIT_CLOSED))
        audit_record(
            actor=actor,
            action="webhook_endpoint.circuit",
            target_type="webhook_endpoint",
            target_id=endpoint.pk,
            before=before,
            after={"circuit_state": endpoint.circuit_state, "circuit_retry_at": endpoint.circuit_retry_at},
        )
    return endpoint


def webhook_endpoint_disabled_mail(*, endpoint_id: int) -> int:
    """E-mail the staff who may change endpoints that this one was disabled. Returns how many."""
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    staff = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    recipients = sorted(user.email for user in staff if user.has_perm("notifications.change_webhookendpoint"))
    if not recipients:
        logger.warning("Webhook endpoint %s disabled; no staff address to tell", endpoint.pk)
        return 0
    since = endpoint.failing_since.isoformat() if endpoint.failing_since else "?"
    send_mail(
        subject=f"Webhook endpoint {endpoint.pk} disabled after failing since {since}",
        message=(
            f"The webhook endpoint {endpoint.url} (id {endpoint.pk}) has failed every delivery since {since} "
            f"and was disabled at {endpoint.disabled_at}. Its deliveries are no longer sent.\n\n"
            "When the merchant has fixed it, reactivate it (PATCH /api/v1/webhooks/endpoints/"
            f'{endpoint.pk}/ with {{"active": true}}, or the admin) and retry the deliveries it missed.'
        ),
        from_email=None,
        recipient_list=recipients,
    )
    return len(recipients)
