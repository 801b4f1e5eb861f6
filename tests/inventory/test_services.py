import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from inventory.models import Product, StockLedgerEntry
from inventory.services import (
    InsufficientStockForAdjustment,
    SkuTaken,
    StockUnavailable,
    stock_adjust,
    stock_claim_ctes,
    stock_release,
    stock_reserve,
    stock_unclaim,
)
from tests.factories import make_product

pytestmark = pytest.mark.django_db


def test_product_create_writes_the_initial_stock_to_the_ledger():
    product = make_product(stock=7)

    entry = StockLedgerEntry.objects.get(product=product)
    assert (entry.kind, entry.delta) == ("initial", 7)
    assert product.available == 7


def test_product_create_refuses_a_taken_sku():
    make_product(sku="DUP")

    with pytest.raises(SkuTaken):
        make_product(sku="DUP")


def test_reserve_takes_every_line_or_none():
    # given one product with enough stock and one without
    plenty, scarce = make_product(stock=10), make_product(stock=1)

    # when an order asks for both, inside a transaction that the caller rolls back on failure
    with pytest.raises(StockUnavailable) as failure, transaction.atomic():
        stock_reserve(order_id=1, lines=[(plenty.pk, 3), (scarce.pk, 2)])

    # then nothing was taken, and the shortfall names the scarce product
    assert [(s.product_id, s.requested, s.reason) for s in failure.value.shortfalls] == [
        (scarce.pk, 2, "insufficient_stock")
    ]
    assert Product.objects.get(pk=plenty.pk).available == 10
    assert not StockLedgerEntry.objects.filter(kind="reservation").exists()


def test_reserve_reports_an_inactive_product():
    product = make_product(stock=10, active=False)

    with pytest.raises(StockUnavailable) as failure, transaction.atomic():
        stock_reserve(order_id=1, lines=[(product.pk, 1)])

    assert failure.value.shortfalls[0].reason == "product_inactive"


def test_a_second_reservation_for_the_same_order_is_refused_by_the_database():
    product = make_product(stock=10)
    with transaction.atomic():
        stock_reserve(order_id=5, lines=[(product.pk, 2)])

    with pytest.raises(IntegrityError), transaction.atomic():
        stock_reserve(order_id=5, lines=[(product.pk, 2)])


def test_release_returns_the_reserved_stock_exactly_once():
    product = make_product(stock=10)
    with transaction.atomic():
        stock_reserve(order_id=9, lines=[(product.pk, 4)])

    with transaction.atomic():
        first = stock_release(order_ids=[9], reason="cancelled")
    with transaction.atomic():
        second = stock_release(order_ids=[9], reason="cancelled")

    assert (first, second) == (4, 0)
    assert Product.objects.get(pk=product.pk).available == 10
    assert StockLedgerEntry.objects.filter(kind="release").count() == 1


def test_adjustment_cannot_make_stock_negative():
    product = make_product(stock=3)

    with pytest.raises(InsufficientStockForAdjustment):
        stock_adjust(product=product, delta=-4, reason="breakage")
    stock_adjust(product=product, delta=-3, reason="breakage")

    assert Product.objects.get(pk=product.pk).available == 0
    assert StockLedgerEntry.objects.filter(kind="adjustment").count() == 1


def test_the_check_constraint_refuses_negative_stock_whatever_the_code_does():
    product = make_product(stock=1)

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE inventory_product SET available = available - 2 WHERE id = %s", [product.pk])


def test_reconcile_stock_passes_when_the_ledger_balances_and_fails_when_it_does_not(capsys):
    product = make_product(stock=5)
    with transaction.atomic():
        stock_reserve(order_id=1, lines=[(product.pk, 2)])
    call_command("reconcile_stock")

    # when stock changes without a ledger row
    Product.objects.filter(pk=product.pk).update(available=4)

    with pytest.raises(CommandError, match="1 of 1 product"):
        call_command("reconcile_stock")
    assert f"{product.sku}: available 4, ledger says 3" in capsys.readouterr().err


def claims(*products: Product) -> list[int]:
    return [Product.objects.get(pk=product.pk).claimed for product in products]


def stock_claim(*, lines: list[tuple[int, int]]) -> list[int]:
    """Run the claim's CTEs on their own, as the placing statement does; returns the claimed ids."""
    claim = stock_claim_ctes(lines=lines)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {claim.sql} SELECT id FROM claims ORDER BY id", claim.params)
        return [row[0] for row in cursor.fetchall()]


def test_stock_claim_counts_each_line_and_moves_no_stock():
    # given two products
    mug, tea = make_product(stock=10), make_product(stock=10)

    # when an order's lines are claimed
    claimed = stock_claim(lines=[(tea.pk, 1), (mug.pk, 5)])

    # then each product's claim is its line, and its stock and ledger are untouched
    assert claimed == sorted([mug.pk, tea.pk])
    assert claims(mug, tea) == [5, 1]
    assert [Product.objects.get(pk=p.pk).available for p in (mug, tea)] == [10, 10]
    assert StockLedgerEntry.objects.count() == 2  # the initial stock only


def test_stock_claim_takes_only_unclaimed_stock_and_is_all_or_nothing():
    # given a mug with 3 of its 5 units claimed, and tea in plenty
    mug, tea = make_product(stock=5), make_product(stock=10)
    stock_claim(lines=[(mug.pk, 3)])

    # when an order asks for 3 mugs (2 are unclaimed) and 1 tea
    claimed = stock_claim(lines=[(mug.pk, 3), (tea.pk, 1)])

    # then nothing is claimed, not even the tea; 2 mugs still can be
    assert claimed == []
    assert claims(mug, tea) == [3, 0]
    assert stock_claim(lines=[(mug.pk, 2), (tea.pk, 1)]) == sorted([mug.pk, tea.pk])
    assert claims(mug, tea) == [5, 1]


def test_stock_claim_refuses_when_the_callers_condition_is_false():
    mug = make_product(stock=5)
    claim = stock_claim_ctes(lines=[(mug.pk, 1)], condition="FALSE")
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {claim.sql} SELECT count(*) FROM claims", claim.params)
        assert cursor.fetchone() == (0,)
    assert claims(mug) == [0]


def test_stock_unclaim_gives_back_a_claim_but_never_below_zero():
    # given a product with 2 units claimed
    mug = make_product(stock=10)
    stock_claim(lines=[(mug.pk, 2)])

    # when 2 are given back, then 5 more (an order placed before claims were kept)
    with transaction.atomic():
        stock_unclaim(lines=[(mug.pk, 2)])
        stock_unclaim(lines=[(mug.pk, 5)])

    # then the claim is back to zero, not below
    assert claims(mug) == [0]
