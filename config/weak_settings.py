"""What production refuses to start with: development secrets, weak keys, debug, any host.

Each check returns a sentence naming the variable and what to do, so that a process started with
a weak configuration stops with every problem listed at once (``ImproperlyConfigured``).
"""

from __future__ import annotations

import base64
import binascii

# The development defaults (config/settings/local.py, base.py): public, in the repository.
DEVELOPMENT_SECRET_KEYS = frozenset(
    {
        "django-insecure-dev-only-key-never-use-in-production",
        "django-insecure-test-only-key",
    }
)
DEVELOPMENT_PAYMENT_WEBHOOK_SECRET = "whsec_ZGV2LXBheW1lbnQtc2VjcmV0LWNoYW5nZS1tZQ=="  # noqa: S105 (public, refused)
# Django's own deployment check (security.W009) asks for 50 characters and 5 different ones.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
# HMAC-SHA256 keys shorter than this are guessable offline from one signed callback; the
# Standard Webhooks libraries generate 24 to 64 random bytes.
WEBHOOK_SECRET_MIN_BYTES = 24
METRICS_TOKEN_MIN_LENGTH = 24
GENERATE_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(64))'"  # noqa: S105 (a command)


def webhook_secret_bytes(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64), decoded as the scheme's
    library decodes it (padding optional); ValueError if malformed or empty."""
    if not secret.startswith("whsec_"):
        raise ValueError("it must start with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("what follows whsec_ must be base64") from exc
    if not key:
        raise ValueError("it is empty")
    return key


def secret_key_problem(secret_key: str) -> str | None:
    if not secret_key:
        return f"DJANGO_SECRET_KEY must be set in production ({GENERATE_SECRET})."
    if secret_key in DEVELOPMENT_SECRET_KEYS or secret_key.startswith("django-insecure"):
        return f"DJANGO_SECRET_KEY is a development key; set a random one ({GENERATE_SECRET})."
    if len(secret_key) < SECRET_KEY_MIN_LENGTH or len(set(secret_key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return (
            f"DJANGO_SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} random characters "
            f"(it has {len(secret_key)}); generate one with {GENERATE_SECRET}."
        )
    return None


def payment_webhook_secret_problem(secret: str) -> str | None:
    if not secret:
        return "PAYMENT_WEBHOOK_SECRET must be set in production: the payment provider's signing secret."
    if secret == DEVELOPMENT_PAYMENT_WEBHOOK_SECRET:
        return (
            "PAYMENT_WEBHOOK_SECRET is the development secret published in the README: anyone could "
            "sign payment callbacks. Set the secret your payment provider gave you."
        )
    try:
        key = webhook_secret_bytes(secret)
    except ValueError as exc:
        return f"PAYMENT_WEBHOOK_SECRET is not a Standard Webhooks secret: {exc}."
    if len(key) < WEBHOOK_SECRET_MIN_BYTES:
        return (
            f"PAYMENT_WEBHOOK_SECRET decodes to {len(key)} bytes; at least {WEBHOOK_SECRET_MIN_BYTES} "
            "are needed for an HMAC key that cannot be guessed."
        )
    return None


def production_problems(
    *, secret_key: str, payment_webhook_secret: str, debug: bool, allowed_hosts: list[str], metrics_token: str
) -> list[str]:
    """Every reason the given configuration is unfit for production (empty: fit)."""
    problems = [
        problem
        for problem in (secret_key_problem(secret_key), payment_webhook_secret_problem(payment_webhook_secret))
        if problem is not None
    ]
    if debug:
        problems.append("DJANGO_DEBUG must be false in production: debug pages show settings and source code.")
    if not allowed_hosts:
        problems.append("DJANGO_ALLOWED_HOSTS must name the hosts this service answers to.")
    if "*" in allowed_hosts:
        problems.append("DJANGO_ALLOWED_HOSTS must not be '*': name the hosts this service answers to.")
    if not metrics_token:
        problems.append(
            "METRICS_TOKEN must be set in production (/metrics shows business figures); "
            "give Prometheus the same value as a bearer token."
        )
    elif len(metrics_token) < METRICS_TOKEN_MIN_LENGTH:
        problems.append(f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} random characters.")
    return problems
