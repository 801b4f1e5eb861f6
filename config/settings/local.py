"""Development settings: debug on, console e-mail, readable logs."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="django-insecure-dev-only-key-never-use-in-production")
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=True)

if "EMAIL_URL" not in env and "EMAIL_BACKEND" not in env:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# seed_demo's users and passwords are published in the README: never outside these settings.
DEMO_DATA_ALLOWED = True
