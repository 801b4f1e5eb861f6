"""Demo data for a development system: a staff user, a customer and products with stock."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

DEMO_USERS = (
    # username, password, is_staff
    ("staff", "staff-demo-password", True),
    ("customer", "customer-demo-password", False),
)


class Command(BaseCommand):
    help = "Create (or reset) demo users and products, and print their credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
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
                user.set_password(password)
                user.save(update_fields=["password"])
                token, _ = Token.objects.get_or_create(user=user)
                role = "staff (admin)" if is_staff else "customer"
                self.stdout.write(f"  {role:14} username={username} password={password} token={token.key}")
