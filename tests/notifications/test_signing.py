"""Standard Webhooks signing: what the service sends verifies under the scheme's library and
under the test receiver's own implementation, and under nothing else."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifications.signing import webhook_body, webhook_headers, webhook_secret_generate
from tests.notifications.factories import order_payload
from tests.notifications.receiver import standard_webhooks_verify

EVENT_ID = "0b8a6a0e-2a6f-4a1e-9d51-3f3c2b1f4c11"


def signed(secret: str, *, at: datetime | None = None) -> tuple[str, dict[str, str]]:
    body = webhook_body(
        event_id=EVENT_ID,
        event_type="order.paid",
        created_at=datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        sequence=3,
        data=order_payload(status="paid"),
    )
    return body, webhook_headers(secrets=[secret], message_id=EVENT_ID, timestamp=at or datetime.now(UTC), body=body)


def test_a_generated_secret_is_whsec_and_base64_of_at_least_24_random_bytes():
    secrets = {webhook_secret_generate() for _ in range(20)}

    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24


def test_the_body_is_the_event_with_the_order_as_data():
    body, headers = signed(webhook_secret_generate())

    assert json.loads(body) == {
        "id": EVENT_ID,
        "type": "order.paid",
        "created_at": "2030-01-02T03:04:05.678000Z",
        "sequence": 3,
        "data": order_payload(status="paid"),
    }
    assert headers["webhook-id"] == EVENT_ID


def test_the_signature_verifies_with_the_library_and_with_an_independent_implementation():
    # given a body signed with an endpoint's secret
    secret = webhook_secret_generate()
    body, headers = signed(secret)

    # then both verifiers accept it
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    assert standard_webhooks_verify(secret=secret, headers=headers, body=body.encode())
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["webhook-timestamp"].isdigit()


def test_the_independent_implementation_verifies_what_the_library_signs():
    # given a signature made by the scheme's library itself
    secret = webhook_secret_generate()
    now = datetime.now(UTC).replace(microsecond=0)
    signature = Webhook(secret).sign(msg_id="msg_1", timestamp=now, data='{"a":1}')
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }

    # then the receiver's implementation accepts it (so it is a valid cross-check)
    assert standard_webhooks_verify(secret=secret, headers=headers, body=b'{"a":1}')


@pytest.mark.parametrize("tamper", ["body", "secret", "id", "timestamp"])
def test_a_tampered_request_is_refused_by_both_verifiers(tamper):
    secret = webhook_secret_generate()
    body, headers = signed(secret)
    if tamper == "body":
        body = body.replace('"total":"29.00"', '"total":"0.01"')
    elif tamper == "secret":
        secret = webhook_secret_generate()
    elif tamper == "id":
        headers["webhook-id"] = "another-event"
    else:
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)

    assert not standard_webhooks_verify(secret=secret, headers=headers, body=body.encode())
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_a_stale_signature_is_refused():
    secret = webhook_secret_generate()
    body, headers = signed(secret, at=datetime.now(UTC) - timedelta(minutes=6))

    assert not standard_webhooks_verify(secret=secret, headers=headers, body=body.encode())
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)
