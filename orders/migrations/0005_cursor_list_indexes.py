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

# Django's names for the indexes of foreign keys that composite indexes now serve: the order's
# customer by (customer, created_at, id), the line's order by the unique (order, product), the
# line's product by (product, order).
FOREIGN_KEY_INDEXES = {
    ("order", "customer"): ("orders_order", "customer_id", "orders_order_customer_id_0b76f6a4"),
    ("orderline", "order"): ("orders_orderline", "order_id", "orders_orderline_order_id_17f8f3ef"),
    ("orderline", "product"): ("orders_orderline", "product_id", "orders_orderline_product_id_a68772b6"),
}
TARGETS = {
    ("order", "customer"): (settings.AUTH_USER_MODEL, django.db.models.deletion.PROTECT, "orders"),
    ("orderline", "order"): ("orders.order", django.db.models.deletion.CASCADE, "lines"),
    ("orderline", "product"): ("inventory.product", django.db.models.deletion.PROTECT, "+"),
}


def foreign_key_without_index(model_name, name):
    """The foreign key now declared ``db_index=False``, its index dropped concurrently."""
    table, column, index = FOREIGN_KEY_INDEXES[model_name, name]
    to, on_delete, related_name = TARGETS[model_name, name]
    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AlterField(
                model_name=model_name,
                name=name,
                field=models.ForeignKey(db_index=False, on_delete=on_delete, related_name=related_name, to=to),
            ),
        ],
        database_operations=[
            migrations.RunSQL(
                f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"',
                reverse_sql=f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
            ),
        ],
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("inventory", "0002_product_claimed"),
        ("orders", "0004_orderevent_activity_idx"),
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
                models.F("status"),
                models.F("created_at").desc(),
                models.F("id").desc(),
                name="order_email_status_idx",
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
        AddIndexConcurrently(
            model_name="orderline",
            index=models.Index(fields=["product", "-order"], name="order_line_product_order_idx"),
        ),
        foreign_key_without_index("order", "customer"),
        foreign_key_without_index("orderline", "order"),
        foreign_key_without_index("orderline", "product"),
    ]
