# The indexes of the cursor-paginated order lists (orders/models.py, Order.Meta).
#
# Built with CREATE INDEX CONCURRENTLY and dropped with DROP INDEX CONCURRENTLY, so a table of
# millions of orders keeps taking writes while this runs (it takes minutes there, not seconds):
# hence ``atomic = False``. The new indexes are built before the old ones go, so no list is ever
# without one. A build that is interrupted leaves its index behind, marked INVALID: drop it
# (DROP INDEX CONCURRENTLY <name>) and run the migration again.

import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

# Django's name for the index of the customer foreign key, dropped: the (customer, created_at, id)
# index serves every lookup by customer.
CUSTOMER_FK_INDEX = "orders_order_customer_id_0b76f6a4"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("orders", "0002_backfill_product_claims"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(fields=["-created_at", "-id"], name="order_recent_idx"),
        ),
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(fields=["status", "-created_at", "-id"], name="order_status_recent_idx"),
        ),
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(fields=["customer", "-created_at", "-id"], name="order_customer_recent_idx"),
        ),
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(
                fields=["customer", "status", "-created_at", "-id"], name="order_customer_status_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(
                django.db.models.functions.text.Upper("email"),
                models.F("created_at").desc(),
                models.F("id").desc(),
                name="order_email_recent_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(
                fields=["expires_at", "id"],
                condition=models.Q(("status", "reserved")),
                name="order_reserved_due_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="paymentwebhookreceipt",
            index=models.Index(fields=["received_at"], name="payment_receipt_received_idx"),
        ),
        RemoveIndexConcurrently(model_name="order", name="order_customer_created_idx"),
        RemoveIndexConcurrently(model_name="order", name="order_status_created_idx"),
        RemoveIndexConcurrently(model_name="order", name="order_created_idx"),
        RemoveIndexConcurrently(model_name="order", name="order_reserved_expires_idx"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="orders",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX CONCURRENTLY IF EXISTS "{CUSTOMER_FK_INDEX}"',
                    reverse_sql=f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{CUSTOMER_FK_INDEX}" '
                    'ON "orders_order" ("customer_id")',
                ),
            ],
        ),
    ]
