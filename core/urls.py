"""Probes and metrics, outside the API: ``/healthz``, ``/readyz``, ``/metrics``."""

from django.urls import path

from core import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
