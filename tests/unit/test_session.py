"""A kernel's start from many threads at once: jupyter_client's objects are made one at a time
(their traitlets classes resolve their defaults on first use, unguarded)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from nbguard.execute import session
from nbguard.execute.seat import Seat


def test_kernel_managers_are_made_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = threading.Lock()
    inside = most = 0

    class Manager:
        """Slow to make, as a first AsyncKernelManager is; its kernel cannot start."""

        has_kernel = False
        provisioner = None

        def __init__(self, **_: Any) -> None:
            nonlocal inside, most
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)
            with guard:
                inside -= 1

        async def start_kernel(self, **_: Any) -> None:
            raise FileNotFoundError(2, "No such file or directory")

        async def cleanup_resources(self) -> None:
            return None

    monkeypatch.setattr(session, "AsyncKernelManager", Manager)
    seat = Seat(tmp_path, tmp_path, {}, cast(Any, None), {}, "key", tmp_path)

    def launch(_: int) -> object:
        return asyncio.run(session.launch(seat, "upcoming", Path("/nowhere/bin/python")))

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(launch, range(6)))

    assert most == 1
    # Each start still fails on its own, as the missing interpreter it is.
    assert {getattr(outcome, "status", None) for outcome in outcomes} == {"env-failed"}
