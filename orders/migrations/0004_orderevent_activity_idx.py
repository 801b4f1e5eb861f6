from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


# CREATE INDEX CONCURRENTLY: the event table may hold tens of millions of rows, and a plain
# CREATE INDEX would block every transition (and so every reservation) while it is built.
# Concurrent builds cannot run inside a transaction, hence a migration of its own, not atomic.
class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('orders', '0003_activitycount'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='orderevent',
            index=models.Index(condition=models.Q(('kind', 'transition'), ('to_status__in', ['reserved', 'expired'])), fields=['to_status', 'created_at'], name='order_event_activity_idx'),
        ),
    ]
