"""Error reporting to Sentry, on when ``SENTRY_DSN`` is set (settings call :func:`sentry_init`).

Every process loads the settings before it does any work (web, worker and its pool processes,
beat, management commands), so initialising from the settings covers them all. The Django
integration reports unhandled exceptions of requests (the 500s) with the request's URL, user id
and ``X-Request-ID``; the Celery integration reports tasks that fail for good and errors of
beat; error log records are reported as well. No personal data (headers, bodies, e-mail
addresses) is sent unless ``SENTRY_SEND_DEFAULT_PII`` says so.
"""

from __future__ import annotations


def sentry_init(*, dsn: str, environment: str, release: str | None, send_default_pii: bool) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        send_default_pii=send_default_pii,
        integrations=[DjangoIntegration(), CeleryIntegration(monitor_beat_tasks=False)],
        # Errors only: request and task timings are Prometheus's (and tracing's) job.
        traces_sample_rate=0.0,
    )
