"""Merchant webhooks: endpoints, and sending one delivery."""

from __future__ import annotations

import ipaddress
import logging
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.log_context import log_context_bind_order
from core.outbox import outbox_enqueue
from notifications.attempts import Channel, Outcome, SendResult, attempt_settle, busy_result
from notifications.errors import InvalidEventTypes, UnsafeWebhookUrl
from notifications.lock_objects import endpoint_slot, send_lock, webhook_endpoint_lock
from notifications.models import (
    PING_EVENT_TYPE,
    DeliveryAttempt,
    EventType,
    NotificationEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from notifications.selectors import webhook_delivery_blocking, webhook_endpoint_get
from notifications.services.circuit import circuit_admit, circuit_close, circuit_record
from notifications.services.publishing import WEBHOOK_DELIVERY_TASK
from notifications.signing import webhook_body, webhook_headers, webhook_secret_generate
from notifications.ssrf import address_refusal, url_refusal
from notifications.webhook_client import WebhookResponse, webhook_post

logger = logging.getLogger(__name__)

SEND_LOCK_KIND = "webhook_delivery"
# How soon a delivery looks again when its endpoint's send slots are all taken: at first, then
# doubling at each look that finds them taken, up to the attempt deadline (by then every slot
# has come free once, however the endpoint behaves).
SLOT_WAIT_SECONDS = 2
# How long a rotated-out secret keeps signing, beside the new one.
SECRET_ROTATION_OVERLAP = timedelta(hours=24)
# How soon a delivery that waits for an earlier one looks again when that one has no attempt
# scheduled yet (it is pending: being sent, or about to be).
SEQUENCE_WAIT_SECONDS = 2


def webhook_endpoint_create(*, url: str, events: list[str], active: bool = True) -> WebhookEndpoint:
    """Create an endpoint with a newly generated secret (the caller shows it once).

    A URL that can never be requested is refused now rather than at the first delivery; a host
    name is vetted again at every delivery, since what it resolves to may change.
    """
    return WebhookEndpoint.objects.create(
        url=_url_clean(url), events=_events_clean(events), active=active, secret=webhook_secret_generate()
    )


def _events_clean(events: list[str]) -> list[str]:
    known = list(EventType.values)
    unknown = sorted(set(events) - set(known))
    if unknown or not events:
        raise InvalidEventTypes(f"Subscribe to one or more of {', '.join(known)}; unknown: {unknown}.")
    return sorted(set(events), key=known.index)


def _url_clean(url: str) -> str:
    refusal = webhook_url_refusal(url)
    if refusal is not None:
        raise UnsafeWebhookUrl(f"This URL cannot receive webhooks: {refusal}.")
    return url


def webhook_endpoint_signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The secrets that sign a request now: the endpoint's, then the one it replaced while that
    one still signs (``SECRET_ROTATION_OVERLAP`` after a rotation)."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def _endpoint_audited(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit trail keeps of an endpoint: never its secrets."""
    return {
        "url": endpoint.url,
        "events": list(endpoint.events),
        "active": endpoint.active,
        "circuit_state": endpoint.circuit_state,
        "deleted_at": endpoint.deleted_at,
    }


def _endpoint_audit(*, actor: Any, action: str, endpoint: WebhookEndpoint, before: dict[str, Any]) -> None:
    """Record a staff change of an endpoint. Call in the transaction of the change."""
    audit_record(
        actor=actor,
        action=action,
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        before=before,
        after=_endpoint_audited(endpoint),
    )


def webhook_endpoint_update(
    *,
    endpoint_id: int,
    actor: Any,
    url: str | None = None,
    events: list[str] | None = None,
    active: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's URL, subscription or activity, audited as ``actor``'s. Reactivating
    one starts its circuit afresh (closed, failures forgotten); deliveries it missed are retried
    one by one."""
    with transaction.atomic(durable=True):
        endpoint = webhook_endpoint_lock(endpoint_id=endpoint_id)
        before = _endpoint_audited(endpoint)
        fields: list[str] = []
        if url is not None:
            endpoint.url = _url_clean(url)
            fields.append("url")
        if events is not None:
            endpoint.events = _events_clean(events)
            fields.append("events")
        if active is not None and active != endpoint.active:
            endpoint.active = active
            fields.append("active")
            if active:
                endpoint.disabled_at = None
                fields += [*circuit_close(endpoint), "disabled_at"]
        if fields:
            endpoint.save(update_fields=fields)
        _endpoint_audit(actor=actor, action="webhook_endpoint.change", endpoint=endpoint, before=before)
    return endpoint


def webhook_endpoint_delete(*, endpoint_id: int, actor: Any) -> None:
    """Delete an endpoint as the API sees it: deactivated and hidden; its past deliveries keep it
    (their attempts are history), and nothing more is sent to it. Audited as ``actor``'s."""
    with transaction.atomic(durable=True):
        endpoint = webhook_endpoint_lock(endpoint_id=endpoint_id)
        before = _endpoint_audited(endpoint)
        endpoint.active = False
        endpoint.deleted_at = timezone.now()
        endpoint.save(update_fields=["active", "deleted_at"])
        _endpoint_audit(actor=actor, action="webhook_endpoint.delete", endpoint=endpoint, before=before)


def webhook_endpoint_secret_rotate(*, endpoint_id: int, actor: Any) -> WebhookEndpoint:
    """Give an endpoint a new secret (the caller shows it once). The old one keeps signing, as a
    second signature, for ``SECRET_ROTATION_OVERLAP``, so the merchant can switch without losing
    a delivery. Rotating again within it drops the oldest."""
    with transaction.atomic(durable=True):
        endpoint = webhook_endpoint_lock(endpoint_id=endpoint_id)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + SECRET_ROTATION_OVERLAP
        endpoint.secret = webhook_secret_generate()
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
        _endpoint_audit(
            actor=actor, action="webhook_endpoint.rotate_secret", endpoint=endpoint, before=_endpoint_audited(endpoint)
        )
    return endpoint


def webhook_endpoint_ping(*, endpoint_id: int) -> WebhookResponse:
    """Send a signed ``ping`` event to an endpoint now (whatever its circuit says) and return its
    answer; bounded by the attempt deadline. Nothing is recorded: it is a check, not a delivery."""
    endpoint = webhook_endpoint_get(endpoint_id=endpoint_id)
    now = timezone.now()
    event_id = str(uuid.uuid4())
    body = webhook_body(event_id=event_id, event_type=PING_EVENT_TYPE, created_at=now, sequence=None, data={})
    headers = webhook_headers(
        secrets=webhook_endpoint_signing_secrets(endpoint, now=now), message_id=event_id, timestamp=now, body=body
    )
    return webhook_post(url=endpoint.url, body=body, headers=headers)


def webhook_url_refusal(url: str) -> str | None:
    """Why ``url`` can never receive webhooks, judged without resolving its host, or None."""
    refusal = url_refusal(url)
    if refusal is not None or settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS:
        return refusal
    host = httpx.URL(url).host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: vetted when it is resolved, at each delivery
    kind = address_refusal(address)
    return None if kind is None else f"{address} is a {kind} address"


@dataclass(frozen=True)
class _Request:
    url: str
    body: str
    headers: dict[str, str]


def _request_build(delivery: WebhookDelivery, *, now: datetime) -> _Request:
    event = delivery.event
    message_id = str(event.id)
    body = webhook_body(
        event_id=message_id,
        event_type=event.event_type,
        created_at=event.created_at,
        sequence=event.sequence,
        data=event.payload,
    )
    headers = webhook_headers(
        secrets=webhook_endpoint_signing_secrets(delivery.endpoint, now=now),
        message_id=message_id,
        timestamp=now,
        body=body,
    )
    return _Request(url=delivery.endpoint.url, body=body, headers=headers)


def webhook_delivery_send(*, delivery_id: int, attempt: int, waited: int = 0) -> SendResult:
    """Make one attempt at a delivery, record it, and say what the task does next.

    ``attempt`` is the task message's attempt number (1, then one more per failed attempt), and
    ``waited`` how many times it waited already (``Outcome.WAIT``), which spaces its looks. A
    delivery that already succeeded is not sent again, so a redelivered or replayed message is
    harmless. One whose order has an earlier event still on its way to the endpoint waits for
    it (``Outcome.WAIT``), spending no attempt: an endpoint receives an order's events in sequence.
    The HTTP request runs outside any transaction, under the delivery's send lock.
    """
    with send_lock(kind=SEND_LOCK_KIND, object_id=delivery_id) as acquired:
        if not acquired:
            return busy_result(what="delivery")
        delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
        log_context_bind_order(delivery.event.order_id)
        if delivery.status == WebhookDelivery.Status.SUCCEEDED:
            return SendResult(Outcome.SKIPPED, "already delivered")
        if not delivery.endpoint.active:
            return _skip_inactive_endpoint(delivery)
        blocking = webhook_delivery_blocking(delivery=delivery)
        if blocking is not None:
            return _wait_for(delivery, blocking=blocking)
        with endpoint_slot(endpoint_id=delivery.endpoint_id, slots=settings.WEBHOOK_ENDPOINT_CONCURRENCY) as slot:
            if not slot:
                reason = f"all {settings.WEBHOOK_ENDPOINT_CONCURRENCY} of the endpoint's send slots are in use"
                return _wait(delivery, reason=reason, seconds=_slot_wait_seconds(waited=waited))
            admission = circuit_admit(endpoint_id=delivery.endpoint_id, now=timezone.now())
            if admission.wait_seconds is not None:
                return _wait(delivery, reason=admission.reason, seconds=admission.wait_seconds)
            attempted_at = timezone.now()
            request = _request_build(delivery, now=attempted_at)
            response = webhook_post(url=request.url, body=request.body, headers=request.headers)
            with transaction.atomic(durable=True):
                now = timezone.now()
                open_until = circuit_record(
                    endpoint_id=delivery.endpoint_id,
                    verdict=response.verdict,
                    now=now,
                    seconds=response.duration_ms / 1000,
                )
                return _attempt_record(
                    delivery,
                    attempt=attempt,
                    attempted_at=attempted_at,
                    response=response,
                    circuit_open_until=open_until,
                )


def _slot_wait_seconds(*, waited: int) -> int:
    """How long a delivery that found its endpoint's slots taken waits: ``SLOT_WAIT_SECONDS``,
    doubling with each earlier wait, up to the attempt deadline; each drawn between half and all
    of that, so the deliveries of a slow endpoint do not all look again at once."""
    ceiling = min(SLOT_WAIT_SECONDS * 2 ** min(waited, 8), max(SLOT_WAIT_SECONDS, settings.WEBHOOK_DEADLINE_SECONDS))
    return random.randint(math.ceil(ceiling / 2), math.ceil(ceiling))  # noqa: S311 (spreading, not secrecy)


def _wait_for(delivery: WebhookDelivery, *, blocking: WebhookDelivery | NotificationEvent) -> SendResult:
    """Put a delivery off until an earlier event of its order has reached the endpoint, spending
    no attempt. Call holding the delivery's send lock.

    It looks again just after the earlier delivery's next attempt is due, or soon if that one is
    being sent now or not created yet; at most ``NOTIFY_BACKOFF_MAX_SECONDS`` later.
    """
    now = timezone.now()
    retry_in = SEQUENCE_WAIT_SECONDS
    if isinstance(blocking, NotificationEvent):
        reason = f"waiting for sequence {blocking.sequence} of order {blocking.order_id} (not fanned out yet)"
        return _wait(delivery, reason=reason, seconds=retry_in)
    if blocking.next_attempt_at is not None:
        retry_in = math.ceil((blocking.next_attempt_at - now).total_seconds()) + SEQUENCE_WAIT_SECONDS
    retry_in = max(SEQUENCE_WAIT_SECONDS, min(retry_in, int(settings.NOTIFY_BACKOFF_MAX_SECONDS)))
    reason = f"waiting for sequence {blocking.sequence} of order {blocking.order_id} (delivery {blocking.pk})"
    return _wait(delivery, reason=reason, seconds=retry_in)


def _wait(delivery: WebhookDelivery, *, reason: str, seconds: int) -> SendResult:
    """Record why a delivery waits and when it looks again; no attempt is spent. Call holding
    its send lock."""
    now = timezone.now()
    delivery.last_error = reason
    delivery.next_attempt_at = now + timedelta(seconds=seconds)
    delivery.updated_at = now
    delivery.save(update_fields=["last_error", "next_attempt_at", "updated_at"])
    return SendResult(Outcome.WAIT, reason, retry_in=seconds)


def _skip_inactive_endpoint(delivery: WebhookDelivery) -> SendResult:
    """Call holding the delivery's send lock."""
    delivery.status = WebhookDelivery.Status.FAILED
    delivery.last_error = "endpoint deactivated; not sent"
    delivery.next_attempt_at = None
    delivery.updated_at = timezone.now()
    delivery.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
    return SendResult(Outcome.SKIPPED, delivery.last_error)


def _attempt_record(
    delivery: WebhookDelivery,
    *,
    attempt: int,
    attempted_at: datetime,
    response: WebhookResponse,
    circuit_open_until: datetime | None = None,
) -> SendResult:
    """Record one attempt and the delivery's new status. Call inside a transaction, holding its send lock.

    A failure that leaves the endpoint's circuit open (it opened it, or it was the probe) is not
    counted against the delivery: it waits for the circuit, and is never dead-lettered for it.
    """
    now = timezone.now()
    if circuit_open_until is not None:
        retry_in = max(1, int((circuit_open_until - now).total_seconds()) + 1)
        result = SendResult(Outcome.WAIT, f"circuit open: {response.error}", retry_in=retry_in)
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    else:
        settled = attempt_settle(
            channel=Channel.WEBHOOK, verdict=response.verdict, attempt=attempt, error=response.error, now=now
        )
        result = settled.result
        delivery.status = settled.status
        delivery.next_attempt_at = settled.next_attempt_at
    if result.outcome is Outcome.SENT:
        delivery.succeeded_at = now
    if result.outcome in (Outcome.SENT, Outcome.GAVE_UP):
        _next_in_sequence_wake(delivery, now=now)
    delivery.attempt_count += 1
    delivery.last_response_code = response.status_code
    delivery.last_error = response.error
    delivery.last_attempt_at = attempted_at
    delivery.updated_at = now
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempt_count,
        attempted_at=attempted_at,
        duration_ms=response.duration_ms,
        status_code=response.status_code,
        error=response.error,
        response_body=response.body,
        retry_delay_seconds=result.retry_in,
    )
    delivery.save(
        update_fields=[
            "status",
            "attempt_count",
            "last_response_code",
            "last_error",
            "last_attempt_at",
            "next_attempt_at",
            "succeeded_at",
            "updated_at",
        ]
    )
    logger.info(
        "Webhook delivery %s attempt %d to %s: %s %s",
        delivery.pk,
        delivery.attempt_count,
        delivery.endpoint.url,
        response.status_code or "-",
        result.outcome,
    )
    return result


def _next_in_sequence_wake(delivery: WebhookDelivery, *, now: datetime) -> None:
    """A delivery has settled (sent, or dead-lettered): if the order's next event to the same
    endpoint is waiting for it, send that one now rather than at its next look. Call inside the
    transaction that records the settled attempt: the wake-up goes out with its commit.

    The waiting delivery's own message still comes at its time, and finds it sent.
    """
    if delivery.order_id is None or delivery.sequence is None:
        return
    after = (
        WebhookDelivery.objects.filter(
            status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED],
            endpoint_id=delivery.endpoint_id,
            order_id=delivery.order_id,
            sequence__gt=delivery.sequence,
        )
        .order_by("sequence")
        .values("pk", "status", "attempt_count", "next_attempt_at")
        .first()
    )
    if after is None or after["status"] != WebhookDelivery.Status.PENDING or after["attempt_count"]:
        return  # none, or one with attempts of its own: not held back by this one
    if after["next_attempt_at"] is not None and after["next_attempt_at"] > now:
        outbox_enqueue(task_name=WEBHOOK_DELIVERY_TASK, args=[after["pk"]])
