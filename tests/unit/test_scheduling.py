"""Fast tier: which queued run a free kernel slot takes next — the longest expected first,
across envs, runs never seen before ahead of all — and where the expectation comes from."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from nbguard import settings
from nbguard.model import EnvInfo
from nbguard.pipeline import find_notebooks
from nbguard.runner import Runner
from nbguard.scheduling import LongestFirst
from tests.support.fakes import FakeBackend, printed, write_course


def _order_of(expected: dict[str, float | None]) -> list[str]:
    """The order one kernel slot runs the items in, all queued while a first one runs."""
    started: list[str] = []
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        order = LongestFirst(pool)
        blocker = order.submit(0.0, gate.wait)
        futures = [
            order.submit(seconds, lambda name=name: started.append(name))
            for name, seconds in expected.items()
        ]
        gate.set()
        for future in [blocker, *futures]:
            future.result(timeout=10)
    return started


def test_the_longest_expected_run_starts_first_and_unknown_ones_before_all() -> None:
    expected: dict[str, float | None] = {
        "locked/trivial": 1.0,
        "locked/plot": 9.0,
        "upcoming/edited": None,
        "upcoming/plot": 8.5,
        "upcoming/sleep": 2.0,
        "locked/new": None,
    }

    assert _order_of(expected) == [
        "upcoming/edited",  # never ran (or changed since): may be the longest
        "locked/new",  # equal expectations keep the order they were queued in
        "locked/plot",
        "upcoming/plot",  # the second env's long run does not wait behind the first's short ones
        "upcoming/sleep",
        "locked/trivial",
    ]


def test_a_failing_or_cancelled_item_costs_only_its_own_future() -> None:
    gate = threading.Event()
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("nbguard bug")

    with ThreadPoolExecutor(max_workers=1) as pool:
        order = LongestFirst(pool)
        blocker = order.submit(None, gate.wait)
        failing: Future[None] = order.submit(5.0, boom)
        cancelled = order.submit(4.0, lambda: ran.append("cancelled"))
        after = order.submit(1.0, lambda: ran.append("after"))
        assert cancelled.cancel()
        gate.set()
        blocker.result(timeout=10)
        after.result(timeout=10)

    with pytest.raises(RuntimeError, match="nbguard bug"):
        failing.result()
    assert cancelled.cancelled()
    assert ran == ["after"]


def test_a_run_is_expected_to_take_what_it_took_last_time(tmp_path: Path) -> None:
    course = write_course(tmp_path, ["quick.ipynb", "slow.ipynb", "new.ipynb"])
    took = {"quick.ipynb": 0.4, "slow.ipynb": 7.5}
    scripts = {
        (path, "locked"): replace(printed(path, "locked", "x"), duration_s=seconds, reads=())
        for path, seconds in took.items()
    }
    backend = FakeBackend({"locked": {}}, scripts)
    cache_dir = str(tmp_path / "cache")
    config = settings.load(course, {"cache-dir": cache_dir})
    env = EnvInfo("locked", "3.11.7", {}, "fp", Path("/fake/bin/python"))
    by_path = {nb.path: nb for nb in find_notebooks(config)}
    quick, slow, new = (by_path[p] for p in ("quick.ipynb", "slow.ipynb", "new.ipynb"))
    first = Runner(config, backend, tmp_path / "scratch")
    for notebook in (quick, slow):
        first.run(notebook, env)

    # --no-cache executes every notebook again, but still knows what each took.
    again = Runner(
        settings.load(course, {"cache-dir": cache_dir, "cache": False}),
        backend,
        tmp_path / "scratch",
    )

    assert [again.expected(nb, env) for nb in (quick, slow, new)] == [0.4, 7.5, None]
    other_env = replace(env, fingerprint="fp-moved")  # one package moved: a run never seen
    assert again.expected(slow, other_env) is None
