"""The benchmark baselines exist only under the benchmark settings."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import Resolver404, resolve

from config import urls


def test_the_bench_app_and_its_urls_are_not_part_of_the_normal_configuration():
    assert "bench" not in settings.INSTALLED_APPS
    assert settings.ROOT_URLCONF == "config.urls"
    assert not any("bench" in str(pattern.pattern) for pattern in urls.urlpatterns)
    for path in ("/bench/write/", "/bare/json/", "/bare/write/"):
        with pytest.raises(Resolver404):
            resolve(path)


@pytest.mark.django_db
def test_the_api_schema_does_not_mention_the_baselines(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    assert not [path for path in schema["paths"] if "bench" in path]
