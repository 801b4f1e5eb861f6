"""Standard Webhooks (https://www.standardwebhooks.com/) secrets, bodies and signatures.

A secret is ``whsec_`` followed by base64 of the HMAC key. Each request carries ``webhook-id``
(the event id, the same for every attempt so receivers can deduplicate), ``webhook-timestamp``
(unix seconds of the attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``. Signing goes through the scheme's published library, so any of
its implementations verifies what we send.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# 32 random bytes: the scheme asks for 24 to 64.
SECRET_BYTES = 32


def webhook_secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def api_datetime(value: datetime) -> str:
    """A datetime as the API renders it: ISO 8601, UTC as ``Z``."""
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def webhook_body(
    *, event_id: str, event_type: str, created_at: datetime, sequence: int | None, data: dict[str, Any]
) -> str:
    """The request body: ``{"id", "type", "created_at", "sequence", "data"}``, compact, ASCII-only JSON."""
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created_at": api_datetime(created_at),
            "sequence": sequence,
            "data": data,
        },
        separators=(",", ":"),
    )


def webhook_headers(*, secrets: Sequence[str], message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``timestamp``, signed with each
    of ``secrets`` (the current one first): ``webhook-signature`` lists one ``v1,`` signature
    per secret, separated by spaces, as the scheme allows during a secret's rotation."""
    timestamp = timestamp.astimezone(UTC).replace(microsecond=0)
    signatures = [Webhook(secret).sign(msg_id=message_id, timestamp=timestamp, data=body) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
