# Attempts are pruned by age (notifications/services/retention.py). Built concurrently, so a
# table of millions of attempts keeps taking writes meanwhile (hence ``atomic = False``).

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("notifications", "0002_send_lease"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="deliveryattempt",
            index=models.Index(fields=["attempted_at"], name="delivery_attempt_at_idx"),
        ),
    ]
