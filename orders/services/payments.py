"""The payment provider's signed callback (Standard Webhooks)."""

from __future__ import annotations

import binascii
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core.errors import DomainError
from core.parsers import MAX_DEPTH, json_depth_exceeds
from orders.error_codes import OrderErrorCode
from orders.lock_objects import order_lock
from orders.metrics import payment_callbacks_counted
from orders.models import Actor, Order, OrderEvent, OrderStatus, PaymentWebhookReceipt
from orders.services.transitions import order_transition

logger = logging.getLogger(__name__)

MAX_WEBHOOK_ID_LENGTH = 255
MAX_AMOUNT = Decimal(10**12)
SUCCEEDED = "payment.succeeded"
FAILED = "payment.failed"


class InvalidSignature(DomainError):
    status_code = 401
    code = OrderErrorCode.INVALID_SIGNATURE


class InvalidPaymentPayload(DomainError):
    code = "invalid_payload"


@dataclass(frozen=True)
class PaymentCallback:
    webhook_id: str
    event_type: str
    order_id: int
    amount: Decimal
    currency: str
    payload: dict[str, Any]


def payment_callback_verify(*, body: bytes, headers: dict[str, str]) -> PaymentCallback:
    """Check the signature (constant time) and freshness (5 minutes), then parse the body."""
    webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "")
    if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:  # the receipts' column (PaymentWebhookReceipt)
        raise InvalidPaymentPayload(f"webhook-id must be at most {MAX_WEBHOOK_ID_LENGTH} characters.")
    try:
        webhook = Webhook(settings.PAYMENT_WEBHOOK_SECRET)
    except Exception as exc:  # the library refuses an empty or malformed secret in its own ways
        # Refused at start by the settings; if it happens anyway, nothing can be verified.
        logger.error("PAYMENT_WEBHOOK_SECRET is unusable (%s): payment callbacks are refused", exc)
        raise InvalidSignature("Payment callback refused: no signing secret is configured.") from exc
    try:
        payload = webhook.verify(body, headers)
    except (WebhookVerificationError, ValueError, binascii.Error) as exc:
        # ValueError covers malformed signature headers and bodies that are not UTF-8 JSON.
        raise InvalidSignature(f"Payment callback refused: {exc}") from exc
    except RecursionError:  # a signed body nested thousands deep: the parser gave up
        raise InvalidPaymentPayload(f"The body is nested more than {MAX_DEPTH} levels deep.") from None
    if json_depth_exceeds(payload, MAX_DEPTH):
        raise InvalidPaymentPayload(f"The body is nested more than {MAX_DEPTH} levels deep.")
    if not isinstance(payload, dict):
        raise InvalidPaymentPayload("The body must be a JSON object.")
    event_type = payload.get("type")
    if event_type not in (SUCCEEDED, FAILED):
        raise InvalidPaymentPayload(f"Unknown type {event_type!r}.")
    order_id = payload.get("order_id")
    if not isinstance(order_id, int) or isinstance(order_id, bool):
        raise InvalidPaymentPayload("order_id must be an integer.")
    try:
        amount = Decimal(str(payload.get("amount")))
    except InvalidOperation as exc:
        raise InvalidPaymentPayload("amount must be a decimal string.") from exc
    # What the receipts' and orders' amount columns hold: 14 digits, 2 of them decimals.
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        raise InvalidPaymentPayload("amount must be a decimal string with at most 12 digits and 2 decimals.")
    currency = payload.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise InvalidPaymentPayload("currency must be a three-letter code.")
    return PaymentCallback(webhook_id, event_type, order_id, amount, currency.upper(), payload)


@payment_callbacks_counted
def payment_callback_process(*, body: bytes, headers: dict[str, str]) -> str:
    """Apply a verified callback once per webhook-id; returns the outcome.

    A succeeded payment marks a ``reserved`` order paid when amount and currency match. Any
    other succeeded payment (wrong amount, order no longer reserved: cancelled, expired…) is
    recorded on the order's events for staff to refund, and changes nothing else.
    """
    callback = payment_callback_verify(body=body, headers=headers)
    with transaction.atomic(durable=True):
        # The unique webhook_id makes a concurrent duplicate wait here for the first to commit,
        # then find the receipt: a replay is acknowledged without effect.
        receipt, created = PaymentWebhookReceipt.objects.get_or_create(
            webhook_id=callback.webhook_id,
            defaults={
                "event_type": callback.event_type,
                "amount": callback.amount,
                "currency": callback.currency,
                "payload": callback.payload,
                "outcome": PaymentWebhookReceipt.Outcome.UNKNOWN_ORDER,
            },
        )
        if not created:
            return "duplicate"
        try:
            order = order_lock(order_id=callback.order_id)
        except Order.DoesNotExist:
            logger.warning("Payment callback %s for unknown order %s", callback.webhook_id, callback.order_id)
            return str(receipt.outcome)
        receipt.order = order
        receipt.outcome = _apply(order, callback)
        receipt.save(update_fields=["order", "outcome"])
    return str(receipt.outcome)


def _apply(order: Order, callback: PaymentCallback) -> str:
    details = {
        "webhook_id": callback.webhook_id,
        "amount": str(callback.amount),
        "currency": callback.currency,
    }
    if callback.event_type == FAILED:
        _record(order, OrderEvent.Kind.PAYMENT_FAILED, "payment failed at the provider", details)
        return PaymentWebhookReceipt.Outcome.FAILED_PAYMENT
    problem = None
    if order.status != OrderStatus.RESERVED:
        problem = f"payment received for an order that is {order.status}; refund it"
    elif callback.currency != order.currency or callback.amount != order.total:
        problem = (
            f"payment of {callback.amount} {callback.currency} does not match the order total "
            f"{order.total} {order.currency}; refund it"
        )
    if problem is not None:
        _record(order, OrderEvent.Kind.PAYMENT_NOT_APPLIED, problem, details)
        return PaymentWebhookReceipt.Outcome.NOT_APPLIED
    order_transition(order=order, name="pay", actor=Actor.PAYMENT_PROVIDER, reason="payment succeeded", data=details)
    return PaymentWebhookReceipt.Outcome.APPLIED


def _record(order: Order, kind: str, reason: str, data: dict[str, Any]) -> None:
    OrderEvent.objects.create(
        order=order,
        kind=kind,
        from_status=order.status,
        to_status=order.status,
        actor=Actor.PAYMENT_PROVIDER,
        reason=reason,
        data=data,
    )
