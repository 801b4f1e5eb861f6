"""The private system the fault scenarios run against (see tests/reliability/stack.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    system = Stack(tmp_path_factory.mktemp("stack"))
    try:
        system.start()
        yield system
    finally:
        system.stop()
