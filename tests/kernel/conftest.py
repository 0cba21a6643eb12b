"""The kernel tier's rule: every test leaves no kernel process behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import kernel_children


@pytest.fixture(autouse=True)
def _no_kernel_survives() -> Iterator[None]:
    yield
    assert kernel_children() == []
