"""Production settings: secrets and hosts come from the environment, with no defaults.

Importing this module with a missing, development or weak ``DJANGO_SECRET_KEY`` or
``PAYMENT_WEBHOOK_SECRET``, with ``DJANGO_DEBUG=true``, without ``DJANGO_ALLOWED_HOSTS`` or with
``*`` in it, without ``METRICS_TOKEN``, or with ``WEBHOOK_ALLOW_PRIVATE_NETWORKS=true``, raises
``ImproperlyConfigured`` naming every problem (config/weak_settings.py), so a misconfigured
process refuses to start.
"""

import socket

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import LOG_LEVEL, build_logging, env
from config.weak_settings import production_problems

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
PAYMENT_WEBHOOK_SECRET = env("PAYMENT_WEBHOOK_SECRET", default="")
METRICS_TOKEN = env("METRICS_TOKEN", default="")
_problems = production_problems(
    secret_key=SECRET_KEY,
    payment_webhook_secret=PAYMENT_WEBHOOK_SECRET,
    debug=DEBUG,
    allowed_hosts=ALLOWED_HOSTS,
    metrics_token=METRICS_TOKEN,
)
if _problems:
    raise ImproperlyConfigured("Refusing to start with this configuration:\n- " + "\n- ".join(_problems))


def own_addresses() -> list[str]:
    """This machine's own name and addresses (a pod's name and IP, a host's name)."""
    try:
        name, aliases, addresses = socket.gethostbyname_ex(socket.gethostname())
    except OSError:
        return [socket.gethostname()]
    return [name, *aliases, *addresses]


# Prometheus scrapes, and orchestrators probe, each process at its own address and send that
# address as the Host header (Prometheus can send no other): answer to it as well, or they get
# 400. Only what can reach the process directly, not through the load balancer, can use it.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, *own_addresses()]
# Merchant webhook URLs are chosen by API users: reaching loopback or private addresses from the
# worker would let them probe the internal network.
if env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False):
    raise ImproperlyConfigured("WEBHOOK_ALLOW_PRIVATE_NETWORKS must not be true in production")
WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# TLS is terminated by the load balancer in front of gunicorn, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Probes and scrapers talk to the process directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Prometheus scrapes the worker's endpoint from another machine.
WORKER_METRICS_ADDRESS = env("WORKER_METRICS_ADDRESS", default="0.0.0.0")  # noqa: S104

# One JSON object per line, for the log collector; LOG_FORMAT=text for a person reading along.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = build_logging(LOG_FORMAT, LOG_LEVEL)
