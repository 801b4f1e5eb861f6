"""WSGI entry point: ``gunicorn config.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_wsgi_application()

# After the settings have configured logging, so the warning reaches the log.
from config.metrics_dirs import metrics_dir_check_web  # noqa: E402

metrics_dir_check_web()
