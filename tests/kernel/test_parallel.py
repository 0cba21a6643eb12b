"""Kernel tier: many notebooks run at once from worker threads, as `--jobs` does, start and
stop their kernels without port races or leftover kernel processes."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard.execute import ExecOptions, execute_notebook
from nbguard.model import Notebook, NotebookRun
from tests.support.procs import live_kernels

NOTEBOOKS = 20


def _kernel_processes(tmp_path: Path) -> set[int]:
    """PIDs of this test's live kernel processes (Linux /proc): their command line names a
    connection file under its tmp_path (another test run's kernels are not its business)."""
    return live_kernels(marker=str(tmp_path))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="counts processes through /proc")
@pytest.mark.parametrize("jobs", [2, 4])
def test_parallel_kernels_all_run_and_none_is_left(tmp_path: Path, jobs: int) -> None:
    course = tmp_path / "course"
    course.mkdir()
    for number in range(NOTEBOOKS):
        nb = new_notebook(cells=[new_code_cell(f"n = {number}\nprint(n * n)")])
        (course / f"nb{number:02}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    before = _kernel_processes(tmp_path)

    def execute(number: int) -> NotebookRun:
        notebook = Notebook(f"nb{number:02}.ipynb", "0" * 64, "python3", "python")
        return execute_notebook(
            notebook,
            course,
            "upcoming",
            Path(sys.executable),
            ExecOptions(cell_timeout=30),
            tmp_path / "work" / str(number),
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = list(pool.map(execute, range(NOTEBOOKS)))

    assert [(run.status, run.reason) for run in runs] == [("ok", None)] * NOTEBOOKS
    printed = [run.cells[0].outputs[0].data for run in runs]
    assert printed == [{"stdout": f"{number * number}\n"} for number in range(NOTEBOOKS)]
    deadline = time.monotonic() + 10
    while _kernel_processes(tmp_path) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _kernel_processes(tmp_path) - before == set()
