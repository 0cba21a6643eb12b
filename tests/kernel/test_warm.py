"""Kernel tier: kernels started ahead of need — the next run's kernel boots while a notebook
runs, serves the next notebook as a fresh one would, and none outlives the audit."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard.execute import ExecOptions, execute_notebook, kill_all_kernels, release_warm, warm
from nbguard.model import Notebook, NotebookRun

PYTHON = Path(sys.executable)
# What a notebook sees of its kernel: its folder, its history, its data.
SLEEPER = "open('started', 'w').close()\nimport time\ntime.sleep(300)"
PROBE = "import os\nprint(os.getcwd())\nprint(len(In), open('data.txt').read())"


@pytest.fixture(autouse=True)
def _released() -> Iterator[None]:
    yield
    release_warm()  # as the pipeline does when its runs are over


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each run, whether it took a kernel started ahead."""
    seen: list[bool] = []
    claim = warm.claim

    def spy(key: warm.Key) -> object:
        found = claim(key)
        seen.append(found is not None)
        return found

    monkeypatch.setattr(warm, "claim", spy)
    return seen


def _course(root: Path, count: int) -> list[Notebook]:
    notebooks = []
    for number in range(count):
        path = f"unit{number}/nb.ipynb"
        (root / f"unit{number}").mkdir(parents=True)
        (root / f"unit{number}" / "data.txt").write_text(f"data {number}")
        nbformat.write(new_notebook(cells=[new_code_cell(PROBE)]), root / path)
        notebooks.append(Notebook(path, "0" * 64, "python3", "python"))
    return notebooks


def test_the_next_kernel_starts_ahead_and_serves_its_notebook_like_a_fresh_one(
    tmp_path: Path, taken: list[bool]
) -> None:
    course = tmp_path / "course"
    notebooks = _course(course, 6)
    left = iter(range(len(notebooks) - 1, -1, -1))  # runs queued after each, as Runner counts
    lock = threading.Lock()

    def execute(notebook: Notebook) -> NotebookRun:
        with lock:
            ahead = next(left)
        options = ExecOptions(cell_timeout=30, ahead=ahead)
        workdir = tmp_path / "work" / notebook.path.split("/")[0]
        return execute_notebook(notebook, course, "upcoming", PYTHON, options, workdir)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(execute, notebooks))

    assert [run.status for run in runs] == ["ok"] * len(notebooks)
    for number, run in enumerate(runs):
        cwd, seen = run.cells[0].outputs[0].data["stdout"].splitlines()
        # Its own folder in a copy of the course, where its relative paths work.
        assert Path(cwd).parts[-2:] == ("course", f"unit{number}")
        assert not Path(cwd).is_relative_to(course)
        # The folder was entered silently: the notebook's cell is the kernel's first.
        assert seen == f"2 data {number}"  # In: '' and this cell
    assert taken.count(True) >= 3  # most runs found their kernel already started
    release_warm()
    assert sum(1 for _ in (tmp_path / "work").glob("*/course")) == 0  # copies removed


def test_no_kernel_is_started_ahead_for_other_options(tmp_path: Path, taken: list[bool]) -> None:
    course = tmp_path / "course"
    first, second = _course(course, 2)
    plain = ExecOptions(cell_timeout=30, ahead=1)
    limited = ExecOptions(cell_timeout=30, memory_limit=2 * 1024**3)

    execute_notebook(first, course, "upcoming", PYTHON, plain, tmp_path / "w1")
    run = execute_notebook(second, course, "upcoming", PYTHON, limited, tmp_path / "w2")

    assert run.status == "ok"
    assert taken == [False, False]  # the kernel started ahead had no memory limit
    # How many runs are still to come is no option a kernel is started with.
    assert warm.Key.of(course, PYTHON, plain) == warm.Key.of(
        course, PYTHON, replace(plain, ahead=7)
    )


def test_a_stopped_audit_leaves_no_kernel_started_ahead(tmp_path: Path) -> None:
    course = tmp_path / "course"
    (course / "unit0").mkdir(parents=True)
    nbformat.write(
        new_notebook(cells=[new_code_cell(SLEEPER)]),
        course / "unit0" / "nb.ipynb",
    )
    notebook = Notebook("unit0/nb.ipynb", "0" * 64, "python3", "python")
    results: list[NotebookRun] = []
    options = ExecOptions(cell_timeout=300, ahead=3)
    worker = threading.Thread(
        target=lambda: results.append(
            execute_notebook(notebook, course, "upcoming", PYTHON, options, tmp_path / "w")
        )
    )
    worker.start()
    marker = tmp_path / "w" / "course" / "unit0" / "started"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warm.waiting(warm.Key.of(course.resolve(), PYTHON, options)) == 1

    kill_all_kernels()  # Ctrl-C: the pipeline kills every kernel, then releases the rest
    worker.join(timeout=30)
    release_warm()

    assert [result.status for result in results] == ["dead-kernel"]
    assert warm.waiting(warm.Key.of(course.resolve(), PYTHON, options)) == 0
    assert not (tmp_path / "w+" / "course").exists()
