# Events are numbered per order, and deliveries carry the number. New nullable columns (no
# rewrite); both indexes built concurrently, so the tables keep taking writes (``atomic = False``).

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

EVENT_TABLE = "notifications_notificationevent"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("notifications", "0003_delivery_attempt_at_idx"),
    ]

    operations = [
        migrations.AddField(
            model_name="notificationevent",
            name="order_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="notificationevent",
            name="sequence",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="order_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="sequence",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS notification_event_order_sequence "
                    f"ON {EVENT_TABLE} (order_id, sequence) WHERE order_id IS NOT NULL",
                    reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS notification_event_order_sequence",
                ),
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="notificationevent",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(order_id__isnull=False),
                        fields=("order_id", "sequence"),
                        name="notification_event_order_sequence",
                    ),
                ),
            ],
        ),
        AddIndexConcurrently(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(status__in=["pending", "failed"]),
                fields=["endpoint", "order_id", "sequence"],
                name="webhook_delivery_in_flight_idx",
            ),
        ),
    ]
