"""A token's user, cached in Redis, so an authenticated request needs no database query.

A copy (core/copies.py) under the token's digest holds its expiry and what the request path
reads of its user (id, names, e-mail, staff and active flags; never the password hash). Revoking
a token takes effect at once: the transaction that deletes a token (logout, the per-user cap,
the prune, the admin, the user's deletion) or changes its user (a new password, deactivation,
staff rights) writes a *tombstone* over its copy on commit. A tombstone outranks any copy, so a
request that read the token before the change cannot put its copy back, and reads as no copy:
the next request asks PostgreSQL, which refuses the token (or, for a changed user, caches them
again once the tombstone has expired). An expired token is refused from its copy's expiry.

Copies live ``COPY_SECONDS`` at most (never past the token's expiry), tombstones
``TOMBSTONE_SECONDS`` (longer than any request, which is all the time a stale reader has).
Redis unavailable: every request asks PostgreSQL, as without the cache.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from core.copies import Copy, copies_read, copies_store, copies_store_on_commit
from core.models import ApiToken

COPY_SECONDS = 300
TOMBSTONE_SECONDS = 120
_KEY_PREFIX = "orders:token:"
_USER_FIELDS = ("id", "username", "email", "first_name", "last_name", "is_staff", "is_superuser", "is_active")
_COPY, _TOMBSTONE = 0, 1


def token_cache_key(digest: str) -> str:
    """Where a token's copy is kept (read by orders/middleware.py along with other copies)."""
    return f"{_KEY_PREFIX}{digest}"


def _copy_user(data: Any) -> User:
    """The user a token's copy holds, as a model instance that refuses to be saved."""
    user = User(**dict(zip(_USER_FIELDS, data["user"], strict=True)))
    user._state.adding = False
    # A copy has no password hash: saving it would write an empty one. Nothing saves the
    # request's user; this makes sure nothing does by mistake.
    user.save = functools.partial(_refuse_save, user.pk)  # type: ignore[method-assign]
    return user


def token_copy_customer(data: Any, *, now: datetime) -> User | None:
    """The user of a token's copy (``copies_read``'s data, or None) if the token is live and its
    user an active customer (neither staff nor superuser), else None."""
    try:
        user = _copy_user(data)
        live = datetime.fromisoformat(data["expiry"]) > now
    except (KeyError, TypeError, ValueError):
        return None
    if not live or not user.is_active or user.is_staff or user.is_superuser:
        return None
    return user


def token_cache_read(*, digest: str) -> ApiToken | None:
    """The token with its user, as cached; None without a copy (or Redis unavailable)."""
    (data,) = copies_read(keys=[token_cache_key(digest)])
    if not data:
        return None
    token = ApiToken(
        digest=digest,
        token_key=data["token_key"],
        user=_copy_user(data),
        expiry=datetime.fromisoformat(data["expiry"]),
        password_fingerprint="",
    )
    token._state.adding = False
    return token


def _refuse_save(user_id: int, *args: Any, **kwargs: Any) -> None:
    raise RuntimeError(f"user {user_id} was read from the token cache and cannot be saved")


def token_cache_store(*, token: ApiToken) -> None:
    """Leave a copy of a token just authenticated from the database (unless a tombstone is there).
    At once outside a transaction, else on commit."""
    assert token.expiry is not None
    seconds = min(COPY_SECONDS, int((token.expiry - timezone.now()).total_seconds()))
    if seconds <= 0:
        return
    user = token.user
    data = {
        "token_key": token.token_key,
        "expiry": token.expiry.isoformat(),
        "user": [getattr(user, "pk" if field == "id" else field) for field in _USER_FIELDS],
    }
    copies_store_on_commit([Copy(token_cache_key(token.digest), (_COPY,), data, seconds)])


def tokens_revoke_cached_on_commit(*, digests: Sequence[str]) -> None:
    """Tombstones over these tokens' copies when the transaction commits (at once outside one)."""
    if digests:
        version = (_TOMBSTONE, time.time_ns() // 1000)
        copies_store_on_commit([Copy(token_cache_key(digest), version, None, TOMBSTONE_SECONDS) for digest in digests])


def tokens_revoke_cached(*, digests: Sequence[str]) -> None:
    """Tombstones over these tokens' copies now."""
    version = (_TOMBSTONE, time.time_ns() // 1000)
    copies_store([Copy(token_cache_key(digest), version, None, TOMBSTONE_SECONDS) for digest in digests])


# --- Every write path of tokens and users (receivers connected in CoreConfig.ready) ----------
# Signals, because a token is deleted and a user changed by Django's own code too (the admin,
# ``changepassword``, cascades); the receivers only schedule tombstones, after commit.


def token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    tokens_revoke_cached_on_commit(digests=[instance.digest])


def user_changed(sender: Any, instance: User, created: bool = False, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return  # no token yet; or a login, which changes nothing a token's copy holds
    digests = list(ApiToken.objects.filter(user_id=instance.pk).values_list("digest", flat=True))
    tokens_revoke_cached_on_commit(digests=digests)


def token_cache_connect() -> None:
    from django.db.models.signals import post_delete, post_save

    post_delete.connect(token_deleted, sender=ApiToken, dispatch_uid="token_cache_token_deleted")
    post_save.connect(user_changed, sender=User, dispatch_uid="token_cache_user_changed")
