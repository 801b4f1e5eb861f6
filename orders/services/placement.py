"""Placing an order: the business rules a new order must pass, and what placing it writes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from core.errors import Conflict, FieldError, InvalidFields
from core.outbox import outbox_row_insert, outbox_row_insert_sql, outbox_row_written
from inventory.models import Product
from inventory.selectors import products_by_sku
from inventory.services import stock_claim_ctes, stock_claim_marks_write
from inventory.stock_marks import StockMark, stock_marks_read, stock_marks_write_on_commit
from orders.activity import activity_sold_out_count
from orders.error_codes import OrderErrorCode
from orders.metrics import order_created_count
from orders.models import MAX_QUANTITY, Actor, Order, OrderEvent, OrderLine, OrderStatus, order_lines_cache
from orders.reservation_requests import RESERVATION_REQUEST
from orders.services.reservation import RESERVE_TASK


class SoldOut(Conflict):
    code = OrderErrorCode.SOLD_OUT
    logged = False  # counted by the activity charts and the request metrics instead


# The largest total Order.total holds: 14 digits, 2 of them decimals.
MAX_TOTAL = Decimal("999999999999.99")


class TooManyOpenOrders(Conflict):
    code = OrderErrorCode.TOO_MANY_OPEN_ORDERS


@dataclass(frozen=True)
class OrderItem:
    sku: str
    quantity: int


def _products_checked(items: Sequence[OrderItem]) -> list[Product]:
    """The product of each item; raises :class:`InvalidFields` naming every line that cannot be sold."""
    products = products_by_sku(skus=[item.sku for item in items])
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        attr, product = f"items.{index}.sku", products.get(item.sku)
        if item.sku in seen:
            message = f"SKU {item.sku!r} appears more than once; combine the lines."
            errors.append(FieldError(attr, OrderErrorCode.DUPLICATE_SKU, message))
        elif product is None:
            errors.append(FieldError(attr, OrderErrorCode.UNKNOWN_SKU, f"Unknown SKU {item.sku!r}."))
        elif not product.active:
            errors.append(FieldError(attr, OrderErrorCode.PRODUCT_INACTIVE, f"SKU {item.sku!r} is not for sale."))
        seen.add(item.sku)
    if errors:
        raise InvalidFields(errors)
    if len({products[item.sku].currency for item in items}) > 1:
        message = "All items of an order must be priced in one currency."
        raise InvalidFields([FieldError("items", OrderErrorCode.MIXED_CURRENCIES, message)])
    return [products[item.sku] for item in items]


def _sold_out_by_marks(items: Sequence[OrderItem]) -> list[str]:
    """The SKUs the stock marks in Redis show short, when the marks alone decide the answer.

    Only when every line has a mark, no SKU repeats, every product is for sale and all are in one
    currency: the database would then answer the same refusal (the marks are its committed state,
    see inventory/stock_marks.py). Otherwise, or with Redis unavailable, nothing: the caller asks
    PostgreSQL.
    """
    skus = [item.sku for item in items]
    if len(set(skus)) != len(skus):
        return []
    marks = stock_marks_read(skus=skus)
    if len(marks) != len(skus) or not all(mark.active for mark in marks.values()):
        return []
    if len({mark.currency for mark in marks.values()}) > 1:
        return []
    return [item.sku for item in items if marks[item.sku].free < item.quantity]


def _email_for(*, customer: User, email: str | None) -> str:
    email = email or customer.email
    if not email:
        message = "Required: your account has no e-mail address."
        raise InvalidFields([FieldError("email", OrderErrorCode.EMAIL_REQUIRED, message)])
    return email


def _refuse_sold_out(short: Sequence[str]) -> NoReturn:
    activity_sold_out_count()  # in memory: a refusal writes nothing (orders/activity.py)
    raise SoldOut(f"Not enough stock for: {', '.join(short)}.")


def order_place(*, customer: User, email: str | None, items: Sequence[OrderItem]) -> Order:
    """Accept an order: the order, its lines, its first event, its claims on the stock and its
    reservation task commit together. A worker reserves the stock later (``order_reserve``).

    Refused, with nothing written: a line whose SKU is unknown, inactive or repeated, or items
    in several currencies (:class:`InvalidFields`, per line); no ``email`` and none on the
    account; an order the stock less the claims of pending orders cannot serve in full
    (:class:`SoldOut`: decided under the products' row locks by the claim, which takes only
    unclaimed stock; the reservation takes the stock itself later); a customer who already has
    ``ORDER_MAX_OPEN_PER_CUSTOMER`` pending or reserved orders (:class:`TooManyOpenOrders`). Quantities (1 to 1000) and
    the number of lines (1 to 100) are the caller's to check: they are the input's shape.

    A refusal is answered from the stock marks in Redis when they decide it, without a database
    query; the database decides everything else, and refreshes the marks it refuses on.
    """
    short = _sold_out_by_marks(items)
    if short:  # the products passed their checks when the marks were written
        _email_for(customer=customer, email=email)
        _refuse_sold_out(short)
    products = _products_checked(items)
    email = _email_for(customer=customer, email=email)
    short_products = [p for p, item in zip(products, items, strict=True) if p.available - p.claimed < item.quantity]
    if short_products:
        # Read from committed rows with their versions: a later commit's mark wins over these.
        # (At once outside a transaction; under an Idempotency-Key the refusal rolls back, and
        # with it the hook.)
        stock_marks_write_on_commit(
            StockMark(p.pk, p.stock_version, p.sku, p.currency, p.active, p.available - p.claimed)
            for p in short_products
        )
        _refuse_sold_out([p.sku for p in short_products])
    total = sum((p.price * item.quantity for p, item in zip(products, items, strict=True)), Decimal("0"))
    if total > MAX_TOTAL:
        message = "The order's total is too large; split it into several orders."
        raise InvalidFields([FieldError("items", OrderErrorCode.TOTAL_TOO_LARGE, message)])
    cap = settings.ORDER_MAX_OPEN_PER_CUSTOMER
    # One statement, its own transaction (or part of the Idempotency-Key's): no BEGIN and COMMIT
    # around it. With a cap, the function takes the customer's row lock first (_PLACE_BODY).
    placed = _order_write(customer=customer, email=email, items=items, products=products, total=total, cap=cap)
    # Refusals are raised once the statement is over (it wrote nothing): raised inside the
    # transaction, with no savepoint, they would break a caller's enclosing transaction.
    if isinstance(placed, _Refused):
        if placed.short:
            _refuse_sold_out(placed.short)
        if placed.gone:  # a product went away since it was read: it is not for sale
            _refuse_sold_out([p.sku for p in products])
        raise TooManyOpenOrders(
            f"You already have {cap} orders waiting for reservation or payment; pay or cancel one first."
        )
    order_created_count()
    return placed


@dataclass(frozen=True)
class _Refused:
    short: list[str]  # the SKUs whose unclaimed stock cannot serve their line
    gone: bool  # some product no longer exists; neither: the open-order cap refused


# Placing an order is one statement: the stock claims (inventory's CTEs, all or nothing, locked
# in product-id order), then, only if every line was claimed, the order, its lines, its first
# event and its reservation task's outbox row. An order and its outbox row therefore commit
# together, and a refused order writes nothing. ``placement_allowed`` is the open-order cap
# (none when ``cap`` is null), counted after the customer's row lock (taken by the function
# before this statement, see ``_PLACE_BODY``) and over at most the cap's number of index entries
# (the customer's orders of one status, orders/models.py). The answer: one row per product,
# with its stock mark as the statement left it and whether its unclaimed stock serves its line;
# placed, with the new order's id and the line's.
_RESERVE_TASK_ARGS = "jsonb_build_array(new_order.id)"
_PLACED_REASON = "order placed"
_PLACE_SQL = f"""
    WITH placement_allowed AS (
        SELECT %(cap)s IS NULL OR (
            SELECT count(*) < %(cap)s FROM (
                SELECT 1 FROM {Order._meta.db_table}
                WHERE customer_id = %(customer_id)s
                    AND status IN ('{OrderStatus.PENDING.value}', '{OrderStatus.RESERVED.value}')
                LIMIT %(cap)s
            ) AS open_order
        ) AS allowed
    ),
    {{claim_ctes}},
    new_order AS (
        INSERT INTO {Order._meta.db_table} (customer_id, email, status, currency, total, created_at, updated_at)
        SELECT %(customer_id)s, %(email)s, '{OrderStatus.PENDING.value}', %(currency)s, %(total)s, %(created_at)s,
            %(created_at)s
        WHERE (SELECT count(*) FROM claims) = %(claim_lines)s
        RETURNING id
    ),
    new_lines AS (
        INSERT INTO {OrderLine._meta.db_table} (order_id, product_id, sku, name, unit_price, quantity)
        SELECT new_order.id, line.product_id, line.sku, line.name, line.unit_price, line.quantity
        FROM new_order, unnest(
            %(line_products)s::bigint[], %(line_skus)s::text[], %(line_names)s::text[],
            %(line_prices)s::numeric[], %(line_quantities)s::integer[]
        ) WITH ORDINALITY AS line(product_id, sku, name, unit_price, quantity, position)
        ORDER BY line.position
        RETURNING id, product_id
    ),
    new_event AS (
        INSERT INTO {OrderEvent._meta.db_table}
            (order_id, kind, from_status, to_status, actor, actor_user_id, reason, data, created_at)
        SELECT new_order.id, '{OrderEvent.Kind.TRANSITION.value}', '', '{OrderStatus.PENDING.value}',
            '{Actor.CUSTOMER.value}', %(customer_id)s, '{_PLACED_REASON}', jsonb_build_object(), %(created_at)s
        FROM new_order
    ),
    new_task AS ({{outbox_insert}})
    SELECT new_order.id, new_lines.id, TRUE, claims.*
    FROM claims JOIN new_lines ON new_lines.product_id = claims.id CROSS JOIN new_order
    UNION ALL
    SELECT NULL, NULL, servable, id, stock_version, sku, currency, active, free
    FROM claim_locked WHERE NOT EXISTS (SELECT FROM claims)
"""  # noqa: S608 - the table names and the constants are the models'; every other value is a parameter
_PLACE_SQL = _PLACE_SQL.format(
    # The claim's SQL is the same for any lines: they are parameters.
    claim_ctes=stock_claim_ctes(lines=[], condition="(SELECT allowed FROM placement_allowed)").sql,
    outbox_insert=outbox_row_insert_sql(args_sql=_RESERVE_TASK_ARGS, source="new_order"),
)

# The statement runs as a PL/pgSQL function of the database, ``orders_place``: PL/pgSQL keeps a
# statement's plan for the rest of the server connection's life, where the statement sent as
# text is planned again on every order (about 1 ms of PostgreSQL's time, as much as running it).
# Nothing is prepared on the client's side, so PgBouncer's transaction pooling is unaffected.
# ``migrate`` installs the function as this module defines it (``place_function_install``).
PLACE_FUNCTION = "orders_place"
# The function's parameters: the statement's, each ``p_`` + its name, with its type.
_PLACE_PARAMETERS = {
    "cap": "integer",
    "customer_id": "integer",
    "claim_ids": "bigint[]",
    "claim_quantities": "integer[]",
    "claim_lines": "integer",
    "email": "text",
    "currency": "text",
    "total": "numeric",
    "created_at": "timestamptz",
    "line_products": "bigint[]",
    "line_skus": "text[]",
    "line_names": "text[]",
    "line_prices": "numeric[]",
    "line_quantities": "integer[]",
    "outbox_id": "uuid",
    "outbox_task_name": "text",
    "outbox_request_id": "text",
    "outbox_traceparent": "text",
    "outbox_created_at": "timestamptz",
}
_PARAMETER = re.compile(r"%\((\w+)\)s")
if set(_PARAMETER.findall(_PLACE_SQL)) != set(_PLACE_PARAMETERS):
    raise ImproperlyConfigured("orders_place: the statement's parameters and the function's differ")

# Column names win over the function's own (``sku``, ``free``... are both); the result's types
# are the statement's columns' (varchar's length is not part of a type here). With a cap, the
# customer's row lock makes concurrent orders of one customer count their open orders one after
# the other, so the cap holds under any concurrency. It is taken by a statement of its own: the
# placing statement after it takes a new snapshot (each statement of a VOLATILE function does, under
# READ COMMITTED) and so sees the orders of whoever held the lock before.
_PLACE_BODY = f"""
#variable_conflict use_column
BEGIN
    IF p_cap IS NOT NULL THEN
        PERFORM 1 FROM {User._meta.db_table} WHERE id = p_customer_id FOR UPDATE;
    END IF;
    RETURN QUERY {_PARAMETER.sub(lambda found: f"p_{found[1]}", _PLACE_SQL).strip()};
END
"""
_PLACE_FUNCTION_SQL = f"""
CREATE FUNCTION {PLACE_FUNCTION}({", ".join(f"p_{name} {kind}" for name, kind in _PLACE_PARAMETERS.items())})
RETURNS TABLE (
    order_id bigint, line_id bigint, servable boolean, product_id bigint, stock_version bigint,
    sku varchar, currency varchar, active boolean, free integer
)
LANGUAGE plpgsql VOLATILE AS $place${_PLACE_BODY}$place$
"""
_PLACE_CALL = "SELECT * FROM {}({})".format(  # noqa: S608 - a constant: every value is a parameter
    PLACE_FUNCTION, ", ".join(f"p_{name} => %({name})s::{kind}" for name, kind in _PLACE_PARAMETERS.items())
)


def place_function_install(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Install ``orders_place`` as this module defines it, unless the database has it so already;
    returns whether it changed. Run by ``migrate`` (orders/apps.py), in one transaction: a
    placement running meanwhile uses either definition, whole.
    """
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [PLACE_FUNCTION])
        if [row[0] for row in cursor.fetchall()] == [_PLACE_BODY]:
            return False
        cursor.execute(f"DROP FUNCTION IF EXISTS {PLACE_FUNCTION}")
        cursor.execute(_PLACE_FUNCTION_SQL)
    return True


def _order_write(
    *,
    customer: User,
    email: str,
    items: Sequence[OrderItem],
    products: list[Product],
    total: Decimal,
    cap: int | None,
) -> Order | _Refused:
    """Write the order, its lines, first event, reservation task and stock claims in one statement
    (``_PLACE_SQL``, run by the database's ``orders_place``); returns the order, or what refused
    it.
    """
    claim = stock_claim_ctes(lines=[(p.pk, item.quantity) for p, item in zip(products, items, strict=True)])
    task = outbox_row_insert(task_name=RESERVE_TASK, args_sql=_RESERVE_TASK_ARGS, source="new_order")
    created_at = task.message.created_at
    params = {
        **claim.params,
        **task.params,
        "customer_id": customer.pk,
        "email": email,
        "currency": products[0].currency,
        "total": total,
        "created_at": created_at,
        "line_products": [p.pk for p in products],
        "line_skus": [p.sku for p in products],
        "line_names": [p.name for p in products],
        "line_prices": [p.price for p in products],
        "line_quantities": [item.quantity for item in items],
        "cap": cap,
    }
    with connection.cursor() as cursor:
        cursor.execute(_PLACE_CALL, params)
        rows = cursor.fetchall()
    # Read under the products' locks: the committed state (as of this transaction's commit).
    stock_claim_marks_write([row[3:] for row in rows], refusing_from=MAX_QUANTITY)
    if not rows or rows[0][0] is None:
        return _Refused(short=[str(row[5]) for row in rows if not row[2]], gone=len(rows) < len(products))
    order = Order(
        id=rows[0][0], customer=customer, email=email, currency=products[0].currency, total=total,
        created_at=created_at, updated_at=created_at,
    )  # fmt: skip
    order._state.adding, order._state.db = False, connection.alias
    line_ids = {row[3]: row[1] for row in rows}
    lines = []
    for p, item in zip(products, items, strict=True):
        line = OrderLine(
            id=line_ids[p.pk], order=order, product=p, sku=p.sku, name=p.name, unit_price=p.price,
            quantity=item.quantity,
        )  # fmt: skip
        line._state.adding, line._state.db = False, connection.alias
        lines.append(line)
    order_lines_cache(order, lines)
    # The reservation task only: the order is announced (``order.pending``) by the
    # transaction that takes it out of pending (``orders_transition``). Sent only if no
    # reservation task is on its way already (orders/reservation_requests.py).
    outbox_row_written(task, args=[order.pk], shared=RESERVATION_REQUEST)
    return order
