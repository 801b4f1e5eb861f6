"""Schemathesis against the OpenAPI document (/api/schema/), over real HTTP to gunicorn.

Every operation of the schema gets generated requests (valid and invalid), each sent once as a
customer and once as staff. Checked: no 5xx (must hold), and every response is one the schema
declares, in its status code, content type, headers and body (must hold too: error answers,
including the business layer's codes and the 503 of an outage, are documented by core.openapi).
No operation is excluded.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.tokens import api_token_issue
from tests.factories import make_product
from tests.flows.support import user_with_token
from tests.processes import Gunicorn

pytestmark = [pytest.mark.flow, pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

# Generated requests per operation (each sent twice, once per role): enough to cover every
# parameter and a few malformed bodies, small enough for the whole run to take about a minute.
MAX_EXAMPLES = 15
CONFORMANCE_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def tokens() -> dict[str, str]:
    make_product("FUZZ", stock=1000)  # something real to order, among the random SKUs
    return {"customer": user_with_token("fuzz-customer")[1], "staff": user_with_token("fuzz-staff", staff=True)[1]}


# A request line over gunicorn's limit (4094 bytes) is refused by gunicorn itself, before the
# application sees it, with its own 414 page; negative query strings can be that long.
URI_TOO_LONG = 414

# Logging out revokes the token it is sent with: that operation gets tokens of its own.
LOGOUT = "/api/v1/auth/logout/"


def tokens_for(operation_path: str, tokens: dict[str, str]) -> list[str]:
    if operation_path != LOGOUT:
        return list(tokens.values())
    return [api_token_issue(user=User.objects.get(username=f"fuzz-{role}")).token for role in tokens]


def fuzz(base_url: str, tokens: dict[str, str], checks: list) -> dict[str, str]:
    """Every operation of the schema, positive and negative cases, as every role; the failures by operation."""
    # (schemathesis' pytest plugin, ``from_fixture``, does not run on this pytest version; the
    # operations are driven here through Hypothesis directly, with the same strategies and checks)
    schema = schemathesis.openapi.from_url(f"{base_url}/api/schema/?format=json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema itself is valid
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)  # fmt: skip
            def run(case) -> None:
                for token in tokens_for(case.operation.path, tokens):
                    response = case.call(headers={"Authorization": f"Token {token}"})
                    if response.status_code == URI_TOO_LONG:
                        continue  # gunicorn's own answer, before the application (see below)
                    case.validate_response(response, checks=checks)

            try:
                run()
            except Unsatisfiable:  # an operation without input has no invalid variant to generate
                pass
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; failures reported together
                failures[f"{operation.method.upper()} {operation.path} ({mode})"] = str(exc)[:3000]
    assert operations >= 15, operations
    return failures


def report(failures: dict[str, str]) -> str:
    return "\n\n".join(f"{name}:\n{error}" for name, error in failures.items())


def test_no_request_makes_the_api_fail(live_web: Gunicorn, tokens):
    failures = fuzz(live_web.base_url, tokens, [not_a_server_error])
    assert failures == {}, report(failures)


def test_every_answer_is_one_the_schema_declares(live_web: Gunicorn, tokens):
    failures = fuzz(live_web.base_url, tokens, CONFORMANCE_CHECKS)
    assert failures == {}, report(failures)
