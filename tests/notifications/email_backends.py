"""E-mail backends for tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend


class FailingBackend(BaseEmailBackend):
    """Raises ``FailingBackend.error`` on every send."""

    error: ClassVar[Exception] = ConnectionRefusedError(111, "Connection refused")

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise self.error
