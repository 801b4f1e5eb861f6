"""An operator in a real browser: log in, filter the orders, open one, mark it paid, see the result."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from orders.models import Actor, Order, OrderStatus
from orders.services import order_cancel, order_reserve
from tests.factories import StaffFactory, make_order, make_product

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pass-for-tests"  # tests.factories.UserFactory's
WAIT_SECONDS = 15


def test_an_operator_filters_orders_opens_one_and_marks_it_paid(admin_web, browser, screenshot):
    # given a reserved order waiting for payment and a cancelled one
    operator = StaffFactory(is_superuser=True)
    product = make_product(sku="BROWSER-MUG", stock=10)
    reserved = make_order(lines=[(product, 2)])
    order_reserve(order_id=reserved.pk)
    cancelled = make_order(lines=[(product, 1)])
    order_cancel(order_id=cancelled.pk, actor=Actor.STAFF, actor_user=operator)
    wait = WebDriverWait(browser, WAIT_SECONDS)

    # when the operator logs in
    browser.get(f"{admin_web.base_url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(operator.username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "operations-dashboard")))

    # and filters the orders by status
    browser.get(f"{admin_web.base_url}/admin/orders/order/")
    browser.find_element(By.CSS_SELECTOR, '#changelist-filter a[href*="status__exact=reserved"]').click()
    wait.until(ec.url_contains("status__exact=reserved"))
    listed = {link.text for link in browser.find_elements(By.CSS_SELECTOR, "#result_list th.field-id a")}
    assert listed == {str(reserved.pk)}

    # and opens the order: its lines and timeline, nothing editable
    browser.find_element(By.LINK_TEXT, str(reserved.pk)).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "content-main"), "BROWSER-MUG"))
    page = browser.find_element(By.ID, "content-main").text
    assert "stock reserved" in page
    assert not browser.find_elements(By.CSS_SELECTOR, "#content-main input[name=status]")

    # and marks it paid from the filtered list
    browser.back()
    wait.until(ec.url_contains("status__exact=reserved"))
    browser.find_element(By.CSS_SELECTOR, f'input.action-select[value="{reserved.pk}"]').click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("pay_orders")
    browser.find_element(By.CSS_SELECTOR, "#changelist-form button[name=index]").click()

    # then the admin reports what happened to that order, and the order is paid
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"), f"order(s) {reserved.pk} done"))
    path = screenshot("admin-order-marked-paid")
    assert path.stat().st_size > 0
    assert Order.objects.get(pk=reserved.pk).status == OrderStatus.PAID
    assert Order.objects.get(pk=cancelled.pk).status == OrderStatus.CANCELLED
