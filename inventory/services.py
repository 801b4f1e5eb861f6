"""Stock changes. Every change of ``Product.available`` is a conditional update plus a ledger row.

Every statement that changes ``available`` or ``claimed`` raises ``stock_version`` and returns
the product's stock mark, written to Redis when the transaction commits (inventory/stock_marks.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from core.audit import audit_record
from core.errors import Conflict
from inventory.error_codes import InventoryErrorCode
from inventory.models import Product, StockLedgerEntry
from inventory.stock_marks import MARK_COLUMNS, StockMark, stock_marks_write_on_commit


class SkuTaken(Conflict):
    code = InventoryErrorCode.SKU_TAKEN


class InsufficientStockForAdjustment(Conflict):
    code = InventoryErrorCode.INSUFFICIENT_STOCK


class StockLimitExceeded(Conflict):
    code = InventoryErrorCode.STOCK_LIMIT_EXCEEDED


# The stock columns are PostgreSQL integers.
MAX_STOCK = 2**31 - 1


@dataclass(frozen=True)
class LineShortfall:
    product_id: int
    requested: int
    reason: str  # an InventoryErrorCode value


class StockUnavailable(Exception):
    """Some lines could not be reserved. The caller must roll back the partial reservation."""

    def __init__(self, shortfalls: list[LineShortfall]) -> None:
        super().__init__(f"{len(shortfalls)} line(s) could not be reserved")
        self.shortfalls = shortfalls


def product_create(
    *, sku: str, name: str, price: Decimal, currency: str, stock: int, actor: User | None = None
) -> Product:
    """A product with its initial stock (a ledger row); staff's creations (``actor``) are audited."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                product = Product.objects.create(sku=sku, name=name, price=price, currency=currency, available=stock)
        except IntegrityError as exc:
            raise SkuTaken(f"A product with SKU {sku!r} already exists.") from exc
        StockLedgerEntry.objects.create(
            product=product, kind=StockLedgerEntry.Kind.INITIAL, delta=stock, reason="initial stock", actor=actor
        )
        if actor is not None:
            fields = {"name": name, "price": price, "currency": currency, "stock": stock}
            audit_record(actor=actor, action="product.create", target_type="product", target_id=sku, after=fields)
        stock_marks_write_on_commit([_mark(product)])
    return product


def _mark(product: Product) -> StockMark:
    return StockMark(
        product_id=product.pk,
        version=product.stock_version,
        sku=product.sku,
        currency=product.currency,
        active=product.active,
        free=product.available - product.claimed,
    )


def _marks(rows: Sequence[Sequence[object]]) -> list[StockMark]:
    return [StockMark.from_row(row) for row in rows]


def stock_adjust(*, product: Product, delta: int, reason: str, actor: User | None = None) -> Product:
    """Add (or remove, with a negative delta) stock; refused if it would go below zero or past
    ``MAX_STOCK`` (what the column holds). The ledger row and the audit trail name ``actor``."""
    with transaction.atomic():
        updated = Product.objects.filter(pk=product.pk, available__gte=-delta, available__lte=MAX_STOCK - delta).update(
            available=F("available") + delta, stock_version=F("stock_version") + 1
        )
        if not updated:
            if delta > 0:
                raise StockLimitExceeded(
                    f"Adding {delta} unit(s) of {product.sku} would take its stock past {MAX_STOCK}."
                )
            raise InsufficientStockForAdjustment(
                f"Removing {-delta} unit(s) of {product.sku} would make its stock negative."
            )
        StockLedgerEntry.objects.create(
            product=product, kind=StockLedgerEntry.Kind.ADJUSTMENT, delta=delta, reason=reason, actor=actor
        )
        # Under the row lock the update took: the mark is this transaction's state.
        product.refresh_from_db(fields=["available", "claimed", "active", "stock_version", "updated_at"])
        audit_record(
            actor=actor,
            action="stock.adjust",
            target_type="product",
            target_id=product.sku,
            before={"available": product.available - delta},
            after={"available": product.available, "delta": delta, "reason": reason},
            actor_name="system",
        )
        stock_marks_write_on_commit([_mark(product)])
    return product


def product_sale_changed(*, product_ids: Sequence[int]) -> None:
    """Call in the transaction that changed whether these products are for sale (or their
    currency): their stock marks are replaced on commit."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE inventory_product AS product SET stock_version = stock_version + 1 "  # noqa: S608
            f"WHERE id = ANY(%s) RETURNING {MARK_COLUMNS}",
            [list(product_ids)],
        )
        stock_marks_write_on_commit(_marks(cursor.fetchall()))


# The batch's products, locked in product-id order (``ORDER BY ... FOR NO KEY UPDATE`` locks
# rows as the sort emits them): the lock order every stock change uses.
_RESERVE_LOCK_SQL = """
    SELECT id, available, active FROM inventory_product WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE
"""

# One statement for every product of the batch, still conditional: under the locks just taken it
# always matches, and a row it does not match (a bug) makes the whole reservation fail.
_RESERVE_SQL = f"""
    UPDATE inventory_product AS product
    SET available = product.available - taken.quantity, updated_at = now(),
        stock_version = product.stock_version + 1
    FROM unnest(%s::bigint[], %s::integer[]) AS taken(id, quantity)
    WHERE product.id = taken.id AND product.active AND product.available >= taken.quantity
    RETURNING {MARK_COLUMNS}
"""  # noqa: S608


def stock_reserve_many(*, orders: Sequence[tuple[int, Sequence[tuple[int, int]]]]) -> dict[int, list[LineShortfall]]:
    """Reserve the stock of each ``(order_id, [(product_id, quantity), ...])``, each order all or
    nothing, in the order given; returns the shortfalls of the orders that got nothing.

    Call inside a transaction. Every product of the batch is locked first, in product-id order,
    so two batches never wait on each other in a cycle; the orders are then decided against the
    locked stock, and what they take is written in one conditional update and one insert of the
    ledger (one row per order and product: the partial unique index refuses a second
    reservation of an order, failing the whole transaction).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("stock_reserve_many must run inside a transaction")
    product_ids = sorted({product_id for _, lines in orders for product_id, _ in lines})
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_LOCK_SQL, [product_ids])
        stock = {pk: (available, active) for pk, available, active in cursor.fetchall()}
    left = {pk: available for pk, (available, _) in stock.items()}
    taken: dict[int, int] = defaultdict(int)
    entries: list[StockLedgerEntry] = []
    shortfalls: dict[int, list[LineShortfall]] = {}
    for order_id, lines in orders:
        wanted: dict[int, int] = defaultdict(int)
        for product_id, quantity in lines:
            wanted[product_id] += quantity
        short = [
            LineShortfall(
                product_id,
                quantity,
                InventoryErrorCode.INSUFFICIENT_STOCK
                if stock.get(product_id, (0, False))[1]
                else InventoryErrorCode.PRODUCT_INACTIVE,
            )
            for product_id, quantity in sorted(wanted.items())
            if not stock.get(product_id, (0, False))[1] or left[product_id] < quantity
        ]
        if short:
            shortfalls[order_id] = short
            continue
        for product_id, quantity in sorted(wanted.items()):
            left[product_id] -= quantity
            taken[product_id] += quantity
            entries.append(
                StockLedgerEntry(
                    product_id=product_id,
                    kind=StockLedgerEntry.Kind.RESERVATION,
                    delta=-quantity,
                    order_id=order_id,
                    reason="order reserved",
                )
            )
    if taken:
        ids = sorted(taken)
        with connection.cursor() as cursor:
            cursor.execute(_RESERVE_SQL, [ids, [taken[pk] for pk in ids]])
            marks = _marks(cursor.fetchall())
        if len(marks) != len(ids):
            raise RuntimeError("a locked product changed during its reservation")
        StockLedgerEntry.objects.bulk_create(entries)
        stock_marks_write_on_commit(marks)
    return shortfalls


def stock_reserve(*, order_id: int, lines: Sequence[tuple[int, int]]) -> None:
    """Reserve ``quantity`` of each ``(product_id, quantity)`` for the order, all or nothing
    (:func:`stock_reserve_many` for one order). Call inside a transaction; raises
    :class:`StockUnavailable`, having written nothing, if any line cannot be served.
    """
    shortfalls = stock_reserve_many(orders=[(order_id, lines)])
    if shortfalls:
        raise StockUnavailable(shortfalls[order_id])


# Claims given back in one statement for any number of products, locked in product-id order like
# every stock change (claims are taken by the statement that places the order: ``stock_claim_ctes``).
# A claim never goes below zero: an order placed before claims were kept gives back nothing it
# did not take.
_CLAIMS_SQL = f"""
    WITH locked AS MATERIALIZED (
        SELECT id FROM inventory_product WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE
    )
    UPDATE inventory_product AS product
    SET claimed = GREATEST(product.claimed + changed.quantity, 0), stock_version = product.stock_version + 1
    FROM unnest(%s::bigint[], %s::integer[]) AS changed(id, quantity)
    WHERE product.id = changed.id AND product.id IN (SELECT id FROM locked)
    RETURNING {MARK_COLUMNS}
"""  # noqa: S608


def _claims_change(lines: Sequence[tuple[int, int]], sign: int) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("stock_unclaim must run inside a transaction")
    totals: dict[int, int] = defaultdict(int)
    for product_id, quantity in lines:
        totals[product_id] += sign * quantity
    product_ids = sorted(totals)
    if product_ids:
        with connection.cursor() as cursor:
            cursor.execute(_CLAIMS_SQL, [product_ids, product_ids, [totals[pk] for pk in product_ids]])
            stock_marks_write_on_commit(_marks(cursor.fetchall()))


def stock_unclaim(*, lines: Sequence[tuple[int, int]]) -> None:
    """Give back the claims of an order leaving ``pending`` (reserved, rejected or cancelled)."""
    _claims_change(lines, -1)


# An order's claims, taken by the statement that places it (orders/services/placement.py): CTEs
# to embed in that statement, which writes the order only if they claimed every line. The
# products are locked first, in product-id order (the lock order of every stock change); a row
# locked after a concurrent change is read as that change left it, and nothing changes it until
# commit, so ``claim_check`` (the claim's condition: the unclaimed stock, ``available - claimed``,
# of every line's product serves it) decides for the whole order: every line or none is claimed.
# ``{condition}`` is the caller's own (an SQL boolean over its CTEs): false, nothing is claimed.
_CLAIM_CTES = f"""
    claim_wanted (id, quantity) AS (
        SELECT * FROM unnest(%(claim_ids)s::bigint[], %(claim_quantities)s::integer[])
    ),
    claim_locked (id, stock_version, sku, currency, active, free, servable) AS MATERIALIZED (
        SELECT {MARK_COLUMNS}, product.available - product.claimed >= claim_wanted.quantity
        FROM inventory_product AS product JOIN claim_wanted ON claim_wanted.id = product.id
        ORDER BY product.id FOR NO KEY UPDATE OF product
    ),
    claim_check AS (
        SELECT count(*) = %(claim_lines)s AND coalesce(bool_and(servable), FALSE) AS servable FROM claim_locked
    ),
    claims AS (
        UPDATE inventory_product AS product
        SET claimed = product.claimed + claim_wanted.quantity, stock_version = product.stock_version + 1
        FROM claim_wanted
        WHERE product.id = claim_wanted.id AND product.id IN (SELECT id FROM claim_locked)
            AND (SELECT servable FROM claim_check) AND ({{condition}})
        RETURNING {MARK_COLUMNS}
    )
"""  # noqa: S608


@dataclass(frozen=True)
class ClaimCtes:
    """The claim's CTEs for a caller's statement (:func:`stock_claim_ctes`)."""

    sql: str
    params: dict[str, Any]


def stock_claim_ctes(*, lines: Sequence[tuple[int, int]], condition: str = "TRUE") -> ClaimCtes:
    """CTEs that claim ``quantity`` of each ``(product_id, quantity)`` (distinct products), all or
    nothing, only from unclaimed stock (``available - claimed``), and only if ``condition`` holds.

    Embed ``sql`` in the ``WITH`` of one statement with the change the claim belongs to, with
    ``params`` among its named parameters. Its CTEs: ``claims`` (the claimed products' marks,
    ``MARK_COLUMNS``; empty if refused) and ``claim_locked`` (every product's mark as locked, and
    ``servable``: whether its unclaimed stock serves its line). Pass the statement's rows of
    either to :func:`stock_claim_marks_write`.
    """
    ordered = sorted(lines)
    return ClaimCtes(
        _CLAIM_CTES.format(condition=condition),
        {
            "claim_ids": [product_id for product_id, _ in ordered],
            "claim_quantities": [quantity for _, quantity in ordered],
            "claim_lines": len(ordered),
        },
    )


def stock_claim_marks_write(rows: Sequence[Sequence[object]], *, refusing_from: int) -> None:
    """Store the marks (``MARK_COLUMNS`` rows) a claiming statement returned that could refuse a
    line, on commit (at once if the statement was its own transaction).

    A claim only lowers the unclaimed stock. Its mark is written when it leaves less than
    ``refusing_from`` (the most units a line may ask for) free: above that, no line is refused
    whether the mark says the old figure or the new one, and the write would cost every order a
    Redis round trip for nothing. So a mark is exact below ``refusing_from`` and, above it, says
    at least that much, as the truth does (every change that raises the unclaimed stock writes
    its mark).
    """
    stock_marks_write_on_commit(mark for mark in _marks(rows) if mark.free < refusing_from)


_RELEASE_LEDGER_SQL = """
    INSERT INTO inventory_stockledgerentry (product_id, kind, delta, order_id, reason, created_at)
    SELECT product_id, 'release', -delta, order_id, %s, now()
    FROM inventory_stockledgerentry
    WHERE order_id = ANY(%s) AND kind = 'reservation'
    ORDER BY product_id, order_id
    ON CONFLICT DO NOTHING
    RETURNING product_id, delta
"""


# One statement for any number of products. The rows are locked first, in product-id order
# (``ORDER BY ... FOR UPDATE`` locks rows as the sort emits them), the lock order every stock
# change uses; the update then only touches rows this statement already holds.
_RELEASE_STOCK_SQL = f"""
    WITH locked AS MATERIALIZED (
        SELECT id FROM inventory_product WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE
    )
    UPDATE inventory_product AS product
    SET available = product.available + released.quantity, updated_at = now(),
        stock_version = product.stock_version + 1
    FROM unnest(%s::bigint[], %s::integer[]) AS released(id, quantity)
    WHERE product.id = released.id AND product.id IN (SELECT id FROM locked)
    RETURNING {MARK_COLUMNS}
"""  # noqa: S608


def stock_release(*, order_ids: Sequence[int], reason: str) -> int:
    """Return the stock reserved for these orders, once each; returns the units released.

    Call inside a transaction. Writing the release rows first means the partial unique index
    decides which releases are new, so a repeated release adds nothing. Products are then
    updated in one statement, locked in product-id order (the lock order every stock change uses).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("stock_release must run inside a transaction")
    if not order_ids:
        return 0
    released: dict[int, int] = defaultdict(int)
    with connection.cursor() as cursor:
        cursor.execute(_RELEASE_LEDGER_SQL, [reason, list(order_ids)])
        for product_id, quantity in cursor.fetchall():
            released[product_id] += quantity
        if released:
            product_ids = sorted(released)
            cursor.execute(_RELEASE_STOCK_SQL, [product_ids, product_ids, [released[pk] for pk in product_ids]])
            stock_marks_write_on_commit(_marks(cursor.fetchall()))
    return sum(released.values())
