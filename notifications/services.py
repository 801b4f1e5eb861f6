from __future__ import annotations

from typing import Any


def notification_publish(*, event_type: str, payload: dict[str, Any], email: str | None) -> None:
    """Publish an order event to e-mail and merchant webhooks (after commit)."""
