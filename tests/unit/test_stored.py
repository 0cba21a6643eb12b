"""The outputs saved in a notebook as a baseline run (`--baseline stored`), fast tier."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nbguard.discover import read_notebook
from nbguard.execute import stored_run


def _write(course: Path, *cells: nbformat.NotebookNode) -> str:
    nb = new_notebook(cells=[new_markdown_cell("# stored"), *cells])
    nbformat.write(nb, course / "nb.ipynb")
    return "nb.ipynb"


def test_stored_outputs_become_a_run_of_the_stored_env(tmp_path: Path) -> None:
    ran = new_code_cell("print(1)", execution_count=1)
    ran.outputs = [new_output("stream", name="stdout", text="1\n")]
    shown = new_code_cell("x", execution_count=2)
    shown.outputs = [new_output("execute_result", {"text/plain": "42"}, execution_count=2)]
    never = new_code_cell("print('not yet')")
    path = _write(tmp_path, ran, shown, never)

    run = stored_run(read_notebook(tmp_path, path), tmp_path)

    assert (run.env, run.status) == ("stored", "ok")
    assert [cell.index for cell in run.cells] == [1, 2, 3]
    assert run.cells[0].outputs[0].data == {"stdout": "1\n"}
    assert run.cells[1].outputs[0].data == {"text/plain": "42"}
    # The author never ran the last cell: nothing stored, nothing to compare.
    assert run.cells[2].status == "not-run" and run.cells[2].ignore_output


def test_a_stored_error_makes_the_stored_run_fail_at_that_cell(tmp_path: Path) -> None:
    fails = new_code_cell("1 / 0", execution_count=1)
    fails.outputs = [new_output("error", ename="ZeroDivisionError", evalue="division by zero")]
    allowed = new_code_cell("# NBVAL_RAISES_EXCEPTION\n1 / 0", execution_count=2)
    allowed.outputs = [new_output("error", ename="ZeroDivisionError", evalue="division by zero")]
    path = _write(tmp_path, allowed, fails)

    run = stored_run(read_notebook(tmp_path, path), tmp_path)

    assert run.status == "error"
    assert run.error is not None
    assert (run.error.cell, run.error.ename) == (2, "ZeroDivisionError")


def test_a_notebook_saved_without_outputs_is_skipped_with_the_reason(tmp_path: Path) -> None:
    path = _write(tmp_path, new_code_cell("print(1)"), new_code_cell("print(2)"))

    run = stored_run(read_notebook(tmp_path, path), tmp_path)

    assert run.status == "skipped"
    assert run.reason is not None and "saved without" in run.reason
