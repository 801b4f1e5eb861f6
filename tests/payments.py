"""Signing payment callbacks the way a provider does (Standard Webhooks), written from the spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from django.conf import settings


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payment_request(
    payload: dict[str, Any], *, msg_id: str | None = None, timestamp: int | None = None, secret: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a signed callback."""
    body = json.dumps(payload).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret or settings.PAYMENT_WEBHOOK_SECRET, msg_id, timestamp, body),
    }
    return body, headers
