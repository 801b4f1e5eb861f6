"""How long a failed notification waits before its next attempt."""

from __future__ import annotations

import math
import random

# 2**64 times any sane base is far beyond any cap; stops the float from overflowing.
_MAX_EXPONENT = 64


def retry_countdown(*, attempt: int, base_seconds: float, max_seconds: float) -> int:
    """Whole seconds to wait after failed attempt ``attempt`` (1 = the first attempt).

    Exponential backoff with full jitter: a uniform draw between 0 and
    ``min(max_seconds, base_seconds * 2 ** (attempt - 1))``, so many deliveries failing at once
    (an endpoint down) spread their retries instead of returning together. Rounded up to whole
    seconds because RabbitMQ's native delayed delivery, which Celery uses for countdowns on
    quorum queues, counts whole seconds and refuses a positive delay under one second.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    ceiling = min(max_seconds, base_seconds * 2 ** min(attempt - 1, _MAX_EXPONENT))
    if ceiling <= 0:
        return 0
    return math.ceil(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret
