"""Demo data for a development system: a staff user, a customer and products with stock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.tokens import api_token_issue
from inventory.models import Product
from inventory.services import product_create

DEMO_USERS = (
    # username, password, is_staff
    ("staff", "staff-demo-password", True),
    ("customer", "customer-demo-password", False),
)

DEMO_PRODUCTS = (
    # sku, name, price, stock
    ("TSHIRT-BLK-M", "T-shirt, black, M", Decimal("19.90"), 500),
    ("MUG-LOGO", "Mug with logo", Decimal("9.50"), 200),
    ("HOODIE-GRY-L", "Hoodie, grey, L", Decimal("49.00"), 50),
    ("POSTER-A2", "Poster A2", Decimal("12.00"), 0),
)


class Command(BaseCommand):
    help = "Create (or reset) demo users and products, and print their credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO_DATA_ALLOWED:
            raise CommandError(
                "seed_demo only runs under the development or test settings: it resets the staff user "
                "to a published password. Create real users with `python manage.py createsuperuser`."
            )
        user_model = get_user_model()
        users = []
        with transaction.atomic(durable=True):
            for username, password, is_staff in DEMO_USERS:
                user, _ = user_model.objects.update_or_create(
                    username=username,
                    defaults={
                        "email": f"{username}@example.com",
                        "is_staff": is_staff,
                        "is_superuser": is_staff,
                    },
                )
                user.set_password(password)  # revokes the tokens issued under the previous one
                user.save(update_fields=["password"])
                users.append((user, password, is_staff))
            for sku, name, price, stock in DEMO_PRODUCTS:
                if not Product.objects.filter(sku=sku).exists():
                    product_create(sku=sku, name=name, price=price, currency="USD", stock=stock)
        for user, password, is_staff in users:
            issued = api_token_issue(user=user)
            role = "staff (admin)" if is_staff else "customer"
            self.stdout.write(
                f"  {role:14} username={user.get_username()} password={password} token={issued.token} "
                f"(expires {issued.expires_at:%Y-%m-%d %H:%M} UTC)"
            )
        skus = ", ".join(sku for sku, *_ in DEMO_PRODUCTS)
        self.stdout.write(f"  products       {skus} (existing products are left as they are)")
