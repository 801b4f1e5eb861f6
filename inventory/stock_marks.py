"""Sold-out refusals without PostgreSQL: a copy of each product's orderable stock in Redis.

A *stock mark* is what order placement needs to refuse an order as sold out: the product's id,
its stock version, its SKU, currency, whether it is for sale and ``available - claimed``. Every
statement that changes a product's stock or claims (or its sale state) raises
``Product.stock_version`` and returns the new mark; the transaction's on-commit hook writes it
(``stock_marks_write_on_commit``). PostgreSQL stays the only truth (ARCHITECTURE invariant 10):

- a mark is written only if it is newer than the one in Redis (higher product id for the SKU, or
  the same product and a higher version; compared in Redis by one script), so hooks that run out of
  commit order never leave the older state behind, and a read-through copy taken from the
  database (``stock_marks_store``) never overwrites a newer commit's;
- a write that fails deletes the mark instead, and every mark expires after ``MARK_SECONDS``: a
  mark that could not be replaced (Redis unreachable from this process only) is trusted no longer;
- reading is best effort: Redis unavailable means no marks, and placement asks PostgreSQL.

A mark that says "enough" is never trusted to accept an order (placement reads the products then);
only a refusal is answered from it.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from typing import Any

from django.db import transaction
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

# How long a mark is trusted without being rewritten: bounds how long a mark that could not be
# replaced can outlive its truth. A sold-out SKU costs one database read per this many seconds.
MARK_SECONDS = 30
_KEY_PREFIX = "orders:stock-mark:"

# KEYS[1]: the mark; ARGV: product id, version, the mark's JSON, seconds. Written only if newer.
_WRITE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local mark = cjson.decode(current)
  local pk, version = tonumber(ARGV[1]), tonumber(ARGV[2])
  if mark[1] > pk or (mark[1] == pk and mark[2] >= version) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3], 'EX', tonumber(ARGV[4]))
return 1
"""


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


# What the stock statements return, in StockMark.from_row's order (product table as ``product``).
MARK_COLUMNS = (
    "product.id, product.stock_version, product.sku, product.currency, product.active, "
    "product.available - product.claimed"
)


def _key(sku: str) -> str:
    return f"{_KEY_PREFIX}{sku}"


def _redis() -> Any:
    return get_redis_connection("default")


def stock_marks_store(marks: Iterable[StockMark]) -> None:
    """Write each mark unless Redis holds a newer one; on failure, drop them. Never raises."""
    marks = list(marks)
    if not marks:
        return
    try:
        client = _redis()
        script = client.register_script(_WRITE_SCRIPT)
        pipe = client.pipeline(transaction=False)
        for mark in marks:
            value = json.dumps(astuple(mark), separators=(",", ":"))
            script(keys=[_key(mark.sku)], args=[mark.product_id, mark.version, value, MARK_SECONDS], client=pipe)
        pipe.execute()
    except Exception:  # Redis is only an accelerator
        logger.warning("Could not write stock marks; dropping them", exc_info=True)
        stock_marks_drop(skus=[mark.sku for mark in marks])


def stock_marks_drop(*, skus: Sequence[str]) -> None:
    """Delete the marks of these SKUs (the next refusal asks PostgreSQL). Never raises."""
    try:
        _redis().delete(*[_key(sku) for sku in skus])
    except Exception:
        logger.warning("Could not drop stock marks of %s", ", ".join(skus), exc_info=True)


def stock_marks_write_on_commit(marks: Iterable[StockMark]) -> None:
    """Store the marks once the current transaction commits. Call inside the transaction that changed them."""
    marks = list(marks)
    if marks:
        transaction.on_commit(functools.partial(stock_marks_store, marks))


def stock_marks_read(*, skus: Sequence[str]) -> dict[str, StockMark]:
    """The marks Redis holds for these SKUs (one round trip); none at all when Redis is unavailable."""
    try:
        values = _redis().mget([_key(sku) for sku in skus])
    except Exception:
        logger.warning("Stock marks unavailable; placement reads the products", exc_info=True)
        return {}
    marks: dict[str, StockMark] = {}
    for sku, value in zip(skus, values, strict=True):
        if value is not None:
            try:
                mark = StockMark.from_row(json.loads(value))
            except (ValueError, TypeError):
                continue  # not a mark of this release: ignored, and replaced by the next write
            if mark.sku == sku:
                marks[sku] = mark
    return marks


def stock_marks_clear() -> int:
    """Delete every stock mark (for a database recreated empty: tests, benchmarks); returns how many."""
    client = _redis()
    keys = list(client.scan_iter(match=f"{_KEY_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)
