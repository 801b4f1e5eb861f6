"""What the flow tests share: users with tokens, an HTTP client for the API, signed payment
callbacks, orders made directly in the database, and the stock checks every flow ends with."""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Sum

from core.tokens import api_token_issue, api_tokens_issue_bulk
from inventory.models import Product, StockLedgerEntry
from inventory.selectors import stock_discrepancies
from orders.models import OrderLine, OrderStatus
from orders.selectors import stock_claim_discrepancies
from tests.factories import bulk_orders, staff_permissions_grant
from tests.payments import sign
from tests.processes import wait_until

# Generous for one request on a loaded two-core machine; a hung request fails the test instead.
HTTP_TIMEOUT = 30.0


def user_with_token(username: str, *, staff: bool = False) -> tuple[User, str]:
    user = User.objects.create_user(username=username, email=f"{username}@example.com", is_staff=staff)
    if staff:
        staff_permissions_grant(user)
    return user, api_token_issue(user=user).token


def customers_with_tokens(count: int, *, prefix: str = "buyer") -> list[str]:
    """``count`` customers, each with an e-mail address and an API token; returns the tokens."""
    users = User.objects.bulk_create(
        User(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com") for i in range(count)
    )
    return api_tokens_issue_bulk(users=users)


def pending_orders(*, customer: User, product: Product, count: int, quantity: int = 1) -> list[int]:
    """``count`` pending orders of ``quantity`` x ``product``, written straight to the database.

    No outbox row and no message: nothing but the test itself will try to reserve them.
    """
    return [order.pk for order in bulk_orders(customer=customer, product=product, count=count, quantity=quantity)]


class Api:
    """The order API over real HTTP, as one user (``token``) sees it."""

    def __init__(self, base_url: str, token: str | None = None, *, client: httpx.Client | None = None) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Token {token}"} if token else {}
        self.client = client or httpx.Client(timeout=HTTP_TIMEOUT)

    def url(self, path: str) -> str:
        return f"{self.base_url}/api/v1/{path}"

    def place_order(self, items: list[dict[str, Any]], **extra: Any) -> httpx.Response:
        return self.client.post(self.url("orders/"), json={"items": items, **extra}, headers=self.headers)

    def get(self, url: str) -> httpx.Response:
        return self.client.get(url, headers=self.headers)

    def adjust_stock(self, sku: str, delta: int, reason: str) -> None:
        body = {"delta": delta, "reason": reason}
        response = self.client.post(self.url(f"products/{sku}/stock-adjustments/"), json=body, headers=self.headers)
        assert response.status_code == 201, response.text

    def order(self, order_id: int) -> dict[str, Any]:
        response = self.get(self.url(f"orders/{order_id}/"))
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, order_id: int) -> list[dict[str, Any]]:
        response = self.get(self.url(f"orders/{order_id}/events/"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next"] is None, "more events than one page"
        return body["results"]

    def act(self, order_id: int, action: str) -> httpx.Response:
        return self.client.post(self.url(f"orders/{order_id}/{action}/"), headers=self.headers)

    def wait_for_status(self, location: str, *, leaving: str = OrderStatus.PENDING, timeout: float = 30) -> dict:
        """Poll the order at ``location`` until its status is no longer ``leaving``; return it."""

        def settled() -> dict[str, Any] | None:
            response = self.get(location)
            assert response.status_code == 200, response.text
            order = response.json()
            return order if order["status"] != leaving else None

        return wait_until(settled, timeout=timeout, interval=0.1, message=f"the order at {location} to leave {leaving}")

    def payment_callback(self, body: dict[str, Any], *, webhook_id: str | None = None) -> httpx.Response:
        raw = json.dumps(body).encode()
        headers = signed_payment_headers(raw, webhook_id=webhook_id or f"msg_{uuid.uuid4().hex}")
        return self.client.post(self.url("payments/webhook/"), content=raw, headers=headers)


def signed_payment_headers(
    raw_body: bytes, *, webhook_id: str, timestamp: int | None = None, secret: str | None = None
) -> dict[str, str]:
    """Standard Webhooks headers as the payment provider signs them, written out by hand.

    The key is the base64-decoded part of the ``whsec_`` secret; the signature is the base64
    HMAC-SHA256 of ``"{webhook-id}.{webhook-timestamp}.{raw body}"``.
    """
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret or settings.PAYMENT_WEBHOOK_SECRET, webhook_id, timestamp, raw_body),
        "content-type": "application/json",
    }


def transitions(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(from, to, actor) of every status transition, in the order the API lists them."""
    return [(e["from_status"], e["to_status"], e["actor"]) for e in events if e["kind"] == "transition"]


def assert_stock_reconciles() -> None:
    """``manage.py reconcile_stock`` passes (every product's stock equals its ledger), and every
    product's claims equal the units its pending orders ask for."""
    out = io.StringIO()
    call_command("reconcile_stock", stdout=out, stderr=out)  # raises CommandError on a difference
    assert "match their stock ledger" in out.getvalue()
    assert stock_claim_discrepancies() == []


def available(product: Product) -> int:
    product.refresh_from_db(fields=["available"])
    return product.available


def ledger_units(product: Product, kind: str, *, order_id: int | None = None) -> int:
    entries = StockLedgerEntry.objects.filter(product=product, kind=kind)
    if order_id is not None:
        entries = entries.filter(order_id=order_id)
    return int(entries.aggregate(total=Sum("delta"))["total"] or 0)


@dataclass(frozen=True)
class StockOutcome:
    """Where the stock of one product ended after a rush of orders for it."""

    stock: int
    available: int
    reserved_orders: int
    rejected_orders: int
    pending_orders: int
    reserved_units: int  # the sum of the reserved orders' quantities
    ledger_reserved_units: int  # minus the sum of the reservation rows of the ledger
    claimed: int  # units still claimed by pending orders
    discrepancies: list[tuple[str, int, int]]
    claim_discrepancies: list[tuple[str, int, int]]


def stock_outcome(product: Product, *, stock: int) -> StockOutcome:
    lines = OrderLine.objects.filter(product=product)
    return StockOutcome(
        stock=stock,
        available=available(product),
        reserved_orders=lines.filter(order__status=OrderStatus.RESERVED).count(),
        rejected_orders=lines.filter(order__status=OrderStatus.REJECTED).count(),
        pending_orders=lines.filter(order__status=OrderStatus.PENDING).count(),
        reserved_units=int(
            lines.filter(order__status=OrderStatus.RESERVED).aggregate(total=Sum("quantity"))["total"] or 0
        ),
        ledger_reserved_units=-ledger_units(product, StockLedgerEntry.Kind.RESERVATION),
        claimed=Product.objects.get(pk=product.pk).claimed,
        discrepancies=stock_discrepancies(),
        claim_discrepancies=stock_claim_discrepancies(),
    )


def assert_sold_out_exactly(outcome: StockOutcome) -> None:
    """More demand than stock: every unit reserved once, no more, and the ledger agrees."""
    assert outcome.pending_orders == 0, outcome
    assert outcome.reserved_units == outcome.stock, outcome
    assert outcome.ledger_reserved_units == outcome.stock, outcome
    assert outcome.available == 0, outcome
    assert outcome.claimed == 0, outcome
    assert outcome.discrepancies == [], outcome
    assert outcome.claim_discrepancies == [], outcome
