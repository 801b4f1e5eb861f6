from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Plumbing"

    def ready(self) -> None:
        from core.metrics import connect_task_signals

        connect_task_signals()
