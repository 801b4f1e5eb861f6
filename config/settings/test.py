"""Settings for the test suite: real PostgreSQL, Redis and RabbitMQ, separate names."""

from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES, REST_FRAMEWORK, env, open_orders_cap

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", default="django-insecure-test-only-key")
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=True)
# The suite runs beside a development system on the same machine: its own Redis database and
# RabbitMQ virtual host (created by scripts/services.sh) keep the two apart.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/1")
CACHES = {"default": {**CACHES["default"], "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672/orders_test")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"order_create": env("ORDER_CREATE_RATE", default="") or None},
}
# Flow tests point worker processes at a file-based mailbox and at test-only task modules
# (poison messages, failing tasks) through the environment; see tests/conftest.py.
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=None)
CELERY_IMPORTS = env.list("TEST_CELERY_IMPORTS", default=[])
# Test workers run beside each other and beside a development worker: any free port (logged).
WORKER_METRICS_PORT = env("WORKER_METRICS_PORT", default="0")
# seed_demo's users and passwords are published in the README: never outside these settings.
DEMO_DATA_ALLOWED = True
# The suite's scenarios place hundreds of orders per customer (as the per-user rate limit, off
# unless set); the open-order cap has tests of its own, which set it.
ORDER_MAX_OPEN_PER_CUSTOMER = open_orders_cap(env("ORDER_MAX_OPEN_PER_CUSTOMER", default=""))
