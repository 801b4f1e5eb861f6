"""Test data. Products and orders are made through the services, as production makes them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.db.models import F, Q

from core.permissions import STAFF_ACTIONS
from core.tokens import api_token_issue
from inventory.models import Product, StockLedgerEntry
from inventory.services import product_create, product_sale_changed
from orders.models import Order, OrderLine, OrderStatus
from orders.services import OrderItem, order_place


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"customer{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("pass-for-tests")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


def staff_permissions_grant(user: User, *, actions: list[str] | None = None) -> User:
    """Give ``user`` the model permissions of ``actions`` (every staff action by default)."""
    wanted = {STAFF_ACTIONS[action] for action in (actions if actions is not None else STAFF_ACTIONS)}
    query = Q(pk__in=[])
    for permission in wanted:
        app_label, codename = permission.split(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    user.user_permissions.add(*Permission.objects.filter(query))
    return user


class OperatorFactory(StaffFactory):
    """Staff with the permission of every staff action (core/permissions.py), not a superuser."""

    class Meta:
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"operator{n}")

    staff_permissions = factory.PostGeneration(
        lambda user, create, extracted, **kwargs: staff_permissions_grant(user) if create else None
    )


def view_only_staff() -> User:
    """A support account: staff, with every ``view`` permission and nothing else."""
    user = StaffFactory.create(username=f"support{next(_sku_counter)}")
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


def token_for(user: User) -> str:
    """A new API token for ``user``, as logging in issues one."""
    return api_token_issue(user=user).token


_sku_counter = iter(range(1, 10**9))


def make_product(
    sku: str | None = None,
    *,
    stock: int = 10,
    price: str = "10.00",
    currency: str = "USD",
    active: bool = True,
    name: str = "Test product",
) -> Product:
    """A product with its initial stock, made as staff make one (``product_create``)."""
    product = product_create(
        sku=sku or f"SKU-{next(_sku_counter)}",
        name=name,
        price=Decimal(price),
        currency=currency,
        stock=stock,
    )
    if not active:
        with transaction.atomic():
            Product.objects.filter(pk=product.pk).update(active=False)
            product_sale_changed(product_ids=[product.pk])
        product.refresh_from_db()
    return product


def make_order(*, customer: User | None = None, lines: list[tuple[Product, int]]) -> Order:
    buyer: User = customer or UserFactory.create()
    return order_place(
        customer=buyer,
        email=buyer.email,
        items=[OrderItem(sku=product.sku, quantity=quantity) for product, quantity in lines],
    )


def bulk_orders(*, customer: User, product: Product, count: int, quantity: int, **fields: Any) -> list[Order]:
    """``count`` orders of ``quantity`` x ``product`` with their lines, written in two statements.

    Pending ones claim their units, as placement does. Nothing else (events, ledger, outbox):
    callers add what their scenario needs.
    """
    orders = Order.objects.bulk_create(
        Order(
            customer=customer,
            email=customer.email,
            currency=product.currency,
            total=product.price * quantity,
            **fields,
        )
        for _ in range(count)
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product=product,
            sku=product.sku,
            name=product.name,
            unit_price=product.price,
            quantity=quantity,
        )
        for order in orders
    )
    pending = sum(1 for order in orders if order.status == OrderStatus.PENDING)
    if pending:  # as order placement does: pending orders claim what they ask for
        Product.objects.filter(pk=product.pk).update(claimed=F("claimed") + pending * quantity)
    return orders


def make_reserved_orders(
    *, product: Product, count: int, quantity: int = 1, expires_at: datetime, customer: User | None = None
) -> list[int]:
    """``count`` reserved orders of ``quantity`` units each, made in bulk (for large scenarios).

    Writes what placement plus reservation would: orders, lines, reservation ledger rows and the
    decrement of stock, so the ledger stays balanced.
    """
    buyer: User = customer or UserFactory.create()
    with transaction.atomic():
        orders = bulk_orders(
            customer=buyer,
            product=product,
            count=count,
            quantity=quantity,
            status=OrderStatus.RESERVED,
            reserved_at=expires_at - timedelta(minutes=30),
            expires_at=expires_at,
        )
        StockLedgerEntry.objects.bulk_create(
            StockLedgerEntry(
                product=product, kind=StockLedgerEntry.Kind.RESERVATION, delta=-quantity, order_id=order.pk
            )
            for order in orders
        )
        updated = Product.objects.filter(pk=product.pk, available__gte=count * quantity).update(
            available=F("available") - count * quantity
        )
        assert updated == 1, "not enough stock for the reserved orders"
    return [order.pk for order in orders]
