"""Users of the API for flow tests, each with a real token and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.flows.support import Api, user_with_token
from tests.processes import Gunicorn


@pytest.fixture
def staff_api(live_web: Gunicorn) -> Iterator[Api]:
    _, token = user_with_token("staff", staff=True)
    api = Api(live_web.base_url, token)
    yield api
    api.client.close()


@pytest.fixture
def customer_api(live_web: Gunicorn) -> Iterator[Api]:
    _, token = user_with_token("customer")
    api = Api(live_web.base_url, token)
    yield api
    api.client.close()
