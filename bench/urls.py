"""URLs of the benchmark server: the project's own, plus the baselines under ``/bench/``."""

from django.urls import path

from bench.views import ConstantBaselineApi, ReadBaselineApi, WriteBaselineApi
from config.urls import handler404, handler500
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    path("bench/write/", WriteBaselineApi.as_view(), name="bench-write"),
    path("bench/read/<int:row_id>/", ReadBaselineApi.as_view(), name="bench-read"),
    path("bench/constant/", ConstantBaselineApi.as_view(), name="bench-constant"),
]

__all__ = ["handler404", "handler500", "urlpatterns"]
