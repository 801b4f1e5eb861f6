from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Baseline views the benchmarks compare against; installed only by ``config.settings.bench``."""

    name = "bench"
    default_auto_field = "django.db.models.BigAutoField"
