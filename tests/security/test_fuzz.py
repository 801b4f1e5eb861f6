"""Property-based: whatever bytes, nesting, numbers, headers and path values reach any endpoint
of the OpenAPI document, the answer is never a 5xx, and an error under /api/ is JSON.

In process (Django's test client against the real PostgreSQL and Redis), so a few hundred
requests take seconds; schemathesis drives the same operations over real HTTP from the schema
(tests/reliability/test_api_schema.py).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.tokens import api_token_issue
from tests.factories import OperatorFactory, UserFactory, make_order, make_product
from tests.notifications.factories import WebhookEndpointFactory
from tests.payments import sign

pytestmark = pytest.mark.django_db

EXAMPLES = 300
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def operations() -> list[tuple[str, str]]:
    """(method, path template) of every operation the API documents."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


OPERATIONS = operations()
BODY_OPERATIONS = [(method, path) for method, path in OPERATIONS if method in ("POST", "PUT", "PATCH")]
# Path parameters of the real objects the ``tokens`` fixture makes (by parameter name).
REAL_PATH_VALUES: dict[str, str] = {}

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63, -(2**63) - 1, 10**15]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
)
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "A\x00B", "\u0663", "\ud7ff", "TSHIRT", "x" * 300, "", " ", "1e999", "NaN"]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(texts, st.sampled_from(["items", "sku", "quantity", "delta", "url"])), children,
                        max_size=4),
    ),
    max_leaves=20,
)  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["json", "nested", "bytes", "form", "plausible"]))
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), "application/json"
    if kind == "nested":
        depth = draw(st.integers(min_value=30, max_value=20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode(), "application/json"
    if kind == "bytes":
        content_type = draw(st.sampled_from(["application/json", "text/plain", "application/octet-stream"]))
        return draw(st.binary(max_size=200)), content_type
    if kind == "form":
        fields = draw(st.integers(min_value=0, max_value=1500))
        return "&".join(f"f{n}=1" for n in range(fields)).encode(), "application/x-www-form-urlencoded"
    # plausible: the shapes endpoints expect, with hostile values in them
    item = {"sku": draw(st.one_of(st.just("FUZZ-1"), texts)), "quantity": draw(numbers)}
    body = {
        "items": [item] * draw(st.integers(min_value=0, max_value=3)),
        "email": draw(st.one_of(st.just("a@example.com"), texts)),
        "delta": draw(numbers),
        "reason": draw(texts),
        "sku": draw(texts),
        "name": draw(texts),
        "price": draw(numbers),
        "stock": draw(numbers),
        "url": draw(st.one_of(st.just("https://merchant.example.com/h"), texts)),
        "events": draw(st.lists(texts, max_size=3)),
        "type": draw(st.sampled_from(["payment.succeeded", "payment.failed", "x"])),
        "order_id": draw(numbers),
        "amount": draw(st.one_of(numbers, texts)),
        "currency": draw(texts),
        "username": draw(texts),
        "password": draw(texts),
    }
    return json.dumps(body).encode(), "application/json"


random_path_values = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), texts)


@st.composite
def requests(draw: st.DrawFn, *, real_paths: bool) -> dict[str, Any]:
    """A request to an operation of the document: with ``real_paths``, to a real order, product or
    endpoint (so the body reaches the view's parsing and validation), else to any path value."""
    operations = BODY_OPERATIONS if real_paths else OPERATIONS
    method, template = draw(st.sampled_from(operations))

    def path_value(match: re.Match[str]) -> str:
        if real_paths:
            return REAL_PATH_VALUES.get(match.group(1), "1")
        return _quote(draw(random_path_values))

    path = re.sub(r"\{([^}]+)\}", path_value, template)
    query = {} if real_paths else draw(st.dictionaries(texts, texts, max_size=3))
    body, content_type = draw(bodies())
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(texts)
    roles = ["customer", "staff"] if real_paths else ["customer", "staff", "anonymous"]
    return {
        "method": method,
        "path": path,
        "query": query,
        "body": body,
        "content_type": content_type,
        "headers": headers,
        "role": draw(st.sampled_from(roles)),
        "signed": draw(st.booleans()),
    }


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="") or "x"


def answer(client: Client, request: dict[str, Any], tokens: dict[str, str]):
    headers = dict(request["headers"])
    if request["role"] != "anonymous":
        headers["Authorization"] = f"Token {tokens[request['role']]}"
    if request["path"].endswith("/payments/webhook/") and request["signed"]:
        from django.conf import settings as django_settings

        timestamp = int(time.time())
        headers["webhook-id"] = "msg_fuzz"
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign(
            django_settings.PAYMENT_WEBHOOK_SECRET, "msg_fuzz", timestamp, request["body"]
        )
    if request["path"].endswith("/auth/logout/"):
        return None  # revokes the token: the logout tests cover it
    return client.generic(
        request["method"],
        request["path"] + ("?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in request["query"].items())),
        request["body"] if request["method"] != "GET" else b"",
        content_type=request["content_type"],
        headers=headers,
    )


@pytest.fixture
def tokens() -> dict[str, str]:
    product = make_product("FUZZ-1", stock=1000)
    customer = UserFactory.create()
    order = make_order(customer=customer, lines=[(product, 1)])
    endpoint = WebhookEndpointFactory.create()
    REAL_PATH_VALUES.update(
        {"sku": product.sku, "order_id": str(order.pk), "id": str(endpoint.pk), "endpoint_id": str(endpoint.pk)}
    )
    return {
        "customer": api_token_issue(user=customer).token,
        "staff": api_token_issue(user=OperatorFactory.create()).token,
    }


def test_the_operations_cover_the_api():
    paths = {path for _, path in OPERATIONS}
    assert "/api/v1/orders/" in paths and "/api/v1/payments/webhook/" in paths and "/api/v1/auth/token/" in paths
    assert len(OPERATIONS) >= 15


def assert_answered(request: dict[str, Any], tokens: dict[str, str]) -> None:
    response = answer(Client(), request, tokens)
    if response is None:
        return
    assert response.status_code < 500, (request, response.status_code, response.content[:500])
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json", (request, response.content[:200])


@HYPOTHESIS
@given(request=requests(real_paths=True))
def test_no_body_gets_a_server_error(tokens, request: dict[str, Any]):
    """Bodies (bytes, nesting, numbers, forms, plausible shapes) at every operation that takes one."""
    assert_answered(request, tokens)


@HYPOTHESIS
@given(request=requests(real_paths=False))
def test_no_path_query_or_header_gets_a_server_error(tokens, request: dict[str, Any]):
    """Any path parameter, query string and Idempotency-Key at every operation, any role."""
    assert_answered(request, tokens)
