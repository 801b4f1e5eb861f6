"""API tokens: issued at login, expiring, revoked at logout and by a password change.

django-rest-knox stores each token as a SHA-512 digest (``core.models.ApiToken``); the token
itself exists only in the login's answer. A token lives ``API_TOKEN_TTL_HOURS``; every login
issues a new one (a user may hold several, one per client, up to ``MAX_TOKENS_PER_USER``: the
oldest beyond that are revoked). Expired tokens are refused at once and deleted by a periodic
prune, never on the request path.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from hmac import compare_digest
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import get_digest_token
from knox.settings import CONSTANTS
from rest_framework import exceptions

from core.models import ApiToken
from core.retention import rows_prune
from core.token_cache import token_cache_read, token_cache_store

# Live tokens one user may hold (a few per device or integration); a login beyond it revokes the
# oldest, so a script logging in in a loop cannot grow the table without bound.
MAX_TOKENS_PER_USER = 50


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


def _token_row(*, user: AbstractBaseUser, now: datetime) -> tuple[ApiToken, str]:
    digest, token = get_digest_token()
    row = ApiToken(
        digest=digest,
        token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH],
        user=user,
        expiry=now + timedelta(hours=settings.API_TOKEN_TTL_HOURS),
        password_fingerprint=user.get_session_auth_hash(),
    )
    return row, token


def api_token_issue(*, user: AbstractBaseUser) -> IssuedToken:
    """A new token for ``user`` (already authenticated); the oldest beyond the per-user cap are revoked."""
    with transaction.atomic(durable=True):
        row, token = _token_row(user=user, now=timezone.now())
        row.save(force_insert=True)
        keep = ApiToken.objects.filter(user=user).order_by("-created").values("pk")[:MAX_TOKENS_PER_USER]
        ApiToken.objects.filter(user=user).exclude(pk__in=keep).delete()
    assert row.expiry is not None
    return IssuedToken(token=token, expires_at=row.expiry)


def api_tokens_issue_bulk(*, users: list[User]) -> list[str]:
    """One token per user, written in one statement (test data and benchmarks)."""
    now = timezone.now()
    rows_and_tokens = [_token_row(user=user, now=now) for user in users]
    ApiToken.objects.bulk_create([row for row, _ in rows_and_tokens])
    return [token for _, token in rows_and_tokens]


def api_token_revoke(*, token: ApiToken) -> None:
    token.delete()


def api_token_prune() -> int:
    """Delete expired tokens; returns how many."""
    return rows_prune(ApiToken.objects.filter(expiry__lt=timezone.now()), age_field="expiry")


class ApiTokenAuthentication(TokenAuthentication):
    """knox's ``Authorization: Token <token>``, refusing (401) a token that expired or whose
    user's password changed since it was issued.

    One query (the token with its user), as DRF's own token authentication, and none while the
    token's copy is cached (core/token_cache.py): knox's own check also reads and deletes the
    user's other expired tokens on every request, which the prune does here instead.
    """

    def authenticate_credentials(self, token: bytes) -> tuple[Any, ApiToken]:
        invalid = exceptions.AuthenticationFailed("Invalid or expired token.")
        try:
            text = token.decode("ascii")
            digest = hash_token(text)
        except (UnicodeDecodeError, TypeError, ValueError, binascii.Error):
            raise invalid from None
        now = timezone.now()
        cached = token_cache_read(digest=digest)  # no query; revocations leave no copy behind
        if cached is not None:
            if cached.expiry is None or cached.expiry <= now:
                raise invalid
            return self.validate_user(cached)
        candidates = ApiToken.objects.filter(token_key=text[: CONSTANTS.TOKEN_KEY_LENGTH]).select_related("user")
        for row in candidates:
            if not compare_digest(digest, row.digest):
                continue
            if row.expiry is None or row.expiry <= now:
                raise invalid
            if not compare_digest(row.password_fingerprint, row.user.get_session_auth_hash()):
                raise invalid
            authenticated = self.validate_user(row)
            token_cache_store(token=row)
            return authenticated
        raise invalid
