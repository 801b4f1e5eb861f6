"""Versioned copies in Redis of what PostgreSQL decides (ARCHITECTURE invariant 10).

A copy is ``[version, data]`` under a key, where the version is a list of integers that grows
with every committed change of the original (compared element by element). Used for an order's
representation (orders/cache.py) and the stock marks (inventory/stock_marks.py).

- ``copies_store`` writes a copy only if Redis holds none or an older one, in one script call,
  so on-commit hooks that run out of commit order, and read-through copies taken from the
  database while a change committed, never leave the older state behind;
- a write that fails deletes the key instead; every copy expires, so a copy that could not be
  replaced (Redis unreachable from one process only) is trusted for a bounded time;
- reading is best effort: Redis unavailable reads as no copy, and the caller asks PostgreSQL.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# KEYS: the copies; ARGV[2k-1]: the k-th new copy's JSON, ARGV[2k]: its seconds. Each is written
# only if newer than the copy there. One script call for all: one round trip however many copies.
_WRITE_SCRIPT = """
for k = 1, #KEYS do
  local value = ARGV[2 * k - 1]
  local newer = true
  local current = redis.call('GET', KEYS[k])
  if current then
    local old = cjson.decode(current)[1]
    local new = cjson.decode(value)[1]
    newer = false
    for i = 1, #new do
      if old[i] == nil or new[i] > old[i] then newer = true break end
      if new[i] < old[i] then break end
    end
  end
  if newer then redis.call('SET', KEYS[k], value, 'EX', tonumber(ARGV[2 * k])) end
end
return 0
"""


@dataclass(frozen=True)
class Copy:
    key: str
    version: tuple[int, ...]
    data: Any  # JSON types only
    seconds: int  # how long it may be trusted without being rewritten


def _redis() -> Any:
    return get_redis_connection("default")


def copies_store(copies: Sequence[Copy]) -> None:
    """Write each copy unless Redis holds a newer one; on failure, drop them. Never raises."""
    if not copies:
        return
    try:
        args: list[Any] = []
        for copy in copies:
            args += [json.dumps([list(copy.version), copy.data], separators=(",", ":")), copy.seconds]
        # EVALSHA, and the script loaded only when Redis does not have it yet (redis-py's Script).
        _redis().register_script(_WRITE_SCRIPT)(keys=[copy.key for copy in copies], args=args)
    except Exception:  # Redis is only an accelerator
        logger.warning("Could not write %d cached copies; dropping them", len(copies), exc_info=True)
        copies_drop(keys=[copy.key for copy in copies])


def copies_store_on_commit(copies: Sequence[Copy]) -> None:
    """Store the copies once the current transaction commits (at once outside a transaction).
    Call inside the transaction that changed their originals."""
    if copies:
        transaction.on_commit(functools.partial(copies_store, list(copies)))


def copies_drop(*, keys: Sequence[str]) -> None:
    """Delete these copies (the next read asks PostgreSQL). Never raises."""
    try:
        _redis().delete(*keys)
    except Exception:
        logger.warning("Could not drop cached copies %s", ", ".join(keys), exc_info=True)


# Copies a request has read already, each to be served once more, to the request's next read of
# it, without a round trip (``copies_read_ahead``).
_read_ahead: ContextVar[dict[str, Any] | None] = ContextVar("copies_read_ahead", default=None)


@contextmanager
def copies_read_ahead(found: dict[str, Any]) -> Iterator[None]:
    """Serve these copies (key: data, as ``copies_read`` gave them moments ago) to the first read
    of them inside the block, as that read's answer.

    For a request that read copies before knowing it needed them (orders/middleware.py reads a
    token's copy and a stock mark, then leaves the request to the full path, which reads both
    again): one read of each, not two.
    """
    reset = _read_ahead.set(dict(found))
    try:
        yield
    finally:
        _read_ahead.reset(reset)


def copies_read(*, keys: Sequence[str], quiet: bool = False) -> list[Any | None]:
    """The data of each key's copy, in one round trip; None where there is none, or for every
    key when Redis is unavailable (logged, unless ``quiet``: a caller that falls back on one
    which logs)."""
    ahead = _read_ahead.get()
    if ahead and all(key in ahead for key in keys):
        return [ahead.pop(key) for key in keys]
    try:
        values = _mget(keys)
    except Exception:
        if not quiet:
            logger.warning("Cached copies unavailable; reading from the database", exc_info=True)
        return [None] * len(keys)
    found: list[Any | None] = []
    for value in values:
        try:
            found.append(None if value is None else json.loads(value)[1])
        except (ValueError, TypeError, IndexError):
            found.append(None)  # not a copy of this release: ignored, replaced by the next write
    return found


class _KeptConnection(threading.local):
    """The connection this thread reads copies on (``_mget``), and the pool whose settings made it."""

    connection: Any = None
    pool: Any = None


_kept = _KeptConnection()


def _kept_connect(pool: Any) -> None:
    _kept_drop()
    _kept.connection, _kept.pool = pool.connection_class(**pool.connection_kwargs), pool


def _kept_drop() -> None:
    if _kept.connection is not None:
        _kept.connection.disconnect()
    _kept.connection = None


def _kept_mget(keys: Sequence[str]) -> list[bytes | None]:
    try:
        _kept.connection.send_command("MGET", *keys)
        return list(_kept.connection.read_response())
    except BaseException:
        _kept_drop()  # no half-read answer is ever left on it
        raise


def _mget(keys: Sequence[str]) -> list[bytes | None]:
    """``MGET`` of ``keys`` on a connection this thread keeps, made with the settings of the
    cache's connection pool (its address, credentials and timeouts).

    Copies are read on every hot request (orders/middleware.py). Taking a connection from the
    pool and giving it back costs about half the round trip itself in redis-py's client: the
    pool checks each connection it hands out with a ``poll`` on its socket, and the client wraps
    the command in its retry machinery. A connection kept for these reads only needs neither:
    it is dropped on any error, and one the server closed while it was idle (a Redis restart,
    its ``timeout``) or that timed out is replaced by a new one once. A new pool (other
    settings) or a forked process (the connection records its maker's pid) makes a new one.
    """
    pool = _redis().connection_pool
    reused = _kept.connection is not None and _kept.pool is pool and _kept.connection.pid == os.getpid()
    if not reused:
        _kept_connect(pool)
    try:
        return _kept_mget(keys)
    except (RedisConnectionError, RedisTimeoutError):
        if not reused:  # a new connection failed: Redis is unavailable
            raise
    _kept_connect(pool)
    return _kept_mget(keys)


def copies_clear(*, prefix: str) -> int:
    """Delete every copy whose key starts with ``prefix`` (for a database recreated empty:
    tests, benchmarks); returns how many."""
    client = _redis()
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)
