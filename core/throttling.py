from __future__ import annotations

import logging
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle

logger = logging.getLogger(__name__)


class FailOpenUserRateThrottle(UserRateThrottle):
    """A per-user rate limit kept in Redis that lets requests through when Redis is down.

    Throttling is a business policy, not a security control: losing Redis must never turn
    accepted work into errors.
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # the cache backend's connection errors vary by client
            logger.warning("Rate limit not applied (%s unavailable): %s", self.scope, exc)
            return True
