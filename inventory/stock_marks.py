"""Sold-out refusals without PostgreSQL: a copy of each product's orderable stock in Redis.

A *stock mark* is what order placement needs to refuse an order as sold out: the product's SKU,
currency, whether it is for sale and ``available - claimed``, versioned by (product id,
``Product.stock_version``). Every statement that changes a product's stock or claims (or its
sale state) raises ``stock_version`` and returns the new mark; the transaction's on-commit hook
writes it (``stock_marks_write_on_commit``), but for an order's claim that leaves more free than
any line may ask for: it cannot refuse anything either way (``stock_claim_marks_write``). It is
a versioned copy (core/copies.py): a mark is replaced only by a newer one, dropped when it cannot
be written, and expires after ``MARK_SECONDS``. PostgreSQL stays the only truth: a mark that
says "enough" is never trusted to accept an order (placement reads the products then); only a
refusal is answered from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.copies import Copy, copies_clear, copies_drop, copies_read, copies_store, copies_store_on_commit

# How long a mark is trusted without being rewritten: bounds how long a mark that could not be
# replaced can outlive its truth. A sold-out SKU costs one database read per this many seconds.
MARK_SECONDS = 30
_KEY_PREFIX = "orders:stock-mark:"


@dataclass(frozen=True)
class StockMark:
    product_id: int
    version: int
    sku: str
    currency: str
    active: bool
    free: int  # available - claimed: the units a new order may still ask for

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StockMark:
        """From ``(id, stock_version, sku, currency, active, available - claimed)``, as returned by SQL."""
        product_id, version, sku, currency, active, free = row
        return cls(int(product_id), int(version), str(sku), str(currency), bool(active), int(free))

    def as_copy(self) -> Copy:
        # By SKU, versioned by product id first: a product made later under the same SKU (a
        # database recreated empty) outranks the old one's marks.
        data = [self.product_id, self.version, self.sku, self.currency, self.active, self.free]
        return Copy(
            key=stock_mark_key(self.sku), version=(self.product_id, self.version), data=data, seconds=MARK_SECONDS
        )


# What the stock statements return, in StockMark.from_row's order (product table as ``product``).
MARK_COLUMNS = (
    "product.id, product.stock_version, product.sku, product.currency, product.active, "
    "product.available - product.claimed"
)


def stock_mark_key(sku: str) -> str:
    """Where a SKU's mark is kept (read by orders/middleware.py along with a token's copy)."""
    return f"{_KEY_PREFIX}{sku}"


def stock_marks_store(marks: Iterable[StockMark]) -> None:
    """Write each mark unless Redis holds a newer one; on failure, drop them. Never raises."""
    copies_store([mark.as_copy() for mark in marks])


def stock_marks_write_on_commit(marks: Iterable[StockMark]) -> None:
    """Store the marks once the current transaction commits. Call inside the transaction that changed them."""
    copies_store_on_commit([mark.as_copy() for mark in marks])


def stock_marks_drop(*, skus: Sequence[str]) -> None:
    """Delete the marks of these SKUs (the next refusal asks PostgreSQL). Never raises."""
    copies_drop(keys=[stock_mark_key(sku) for sku in skus])


def stock_marks_read(*, skus: Sequence[str]) -> dict[str, StockMark]:
    """The marks Redis holds for these SKUs (one round trip); none at all when Redis is unavailable."""
    marks: dict[str, StockMark] = {}
    for sku, data in zip(skus, copies_read(keys=[stock_mark_key(sku) for sku in skus]), strict=True):
        if data is not None:
            try:
                mark = StockMark.from_row(data)
            except (ValueError, TypeError):
                continue  # not a mark of this release: ignored, and replaced by the next write
            if mark.sku == sku:
                marks[sku] = mark
    return marks


def stock_marks_clear() -> int:
    """Delete every stock mark (for a database recreated empty: tests, benchmarks); returns how many."""
    return copies_clear(prefix=_KEY_PREFIX)
