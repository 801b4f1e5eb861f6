"""Keys of PostgreSQL's advisory locks: one 64-bit number per name, the same in every process."""

from __future__ import annotations

import hashlib


def advisory_lock_key(name: str) -> int:
    """The key of the advisory lock called ``name``: the first 8 bytes of its SHA-256, signed."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
