from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Plumbing"

    def ready(self) -> None:
        # Imported here: Django imports this module before the apps are ready.
        from django.conf import settings

        from core import log_context, metrics, tracing
        from core.token_cache import token_cache_connect

        if settings.TRACING_ENABLED:
            # Before the WSGI handler reads MIDDLEWARE and before any database connection.
            tracing.tracing_init()

        log_context.connect_task_signals()
        token_cache_connect()
        metrics.connect_task_signals()
