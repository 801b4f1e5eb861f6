from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Plumbing"

    def ready(self) -> None:
        # Imported here: Django imports this module before the apps are ready.
        from core import log_context, metrics

        log_context.connect_task_signals()
        metrics.connect_task_signals()
