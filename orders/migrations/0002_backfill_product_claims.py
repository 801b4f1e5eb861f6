from django.db import migrations

# The units that orders still pending when this runs have asked for (inventory's 0002 adds the
# column at zero; the orders tables are this app's, so the backfill lives here).
BACKFILL = """
    UPDATE inventory_product AS product SET claimed = pending.quantity
    FROM (
        SELECT line.product_id, sum(line.quantity) AS quantity
        FROM orders_orderline AS line JOIN orders_order AS o ON o.id = line.order_id
        WHERE o.status = 'pending'
        GROUP BY line.product_id
    ) AS pending
    WHERE product.id = pending.product_id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("inventory", "0002_product_claimed"),
    ]

    operations = [migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop)]
