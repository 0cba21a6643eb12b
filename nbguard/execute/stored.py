"""The outputs saved in a notebook file as the run of the pseudo-env `stored`; no kernel."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from nbguard.execute import STORED
from nbguard.execute.outputs import convert_outputs, error_of
from nbguard.execute.reading import UNREADABLE, read_notebook, unreadable_reason
from nbguard.execute.tags import cell_flags, cell_result
from nbguard.model import CellError, CellResult, CellStatus, Notebook, NotebookRun, RunStatus


def stored_run(notebook: Notebook, course_root: Path) -> NotebookRun:
    """The outputs saved in the notebook file as a run of the pseudo-env `stored`: the
    baseline a course already keeps in git (`--baseline stored`). No kernel starts.

    A cell the author never ran (no execution count, no outputs) is not compared; a stored
    error output in a cell not allowed to raise makes the stored run an `error` run.
    """
    started = time.monotonic()

    def finish(status: RunStatus, **values: Any) -> NotebookRun:
        duration = time.monotonic() - started
        return NotebookRun(notebook.path, STORED, status, duration, **values)

    if notebook.skip_reason is not None:
        return finish("skipped", reason=notebook.skip_reason)
    try:
        nb = read_notebook(course_root / notebook.path)
    except UNREADABLE as exc:
        return finish("error", reason=unreadable_reason(notebook.path, exc))
    cells: list[CellResult] = []
    error: CellError | None = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        flags = cell_flags(cell)
        outputs, _ = convert_outputs(index, list(cell.get("outputs", [])), key=None)
        never_ran = cell.get("execution_count") is None and not outputs
        if never_ran:
            flags = replace(flags, ignore_output=True)
        status: CellStatus = "skipped" if flags.skip else "not-run" if never_ran else "ok"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and not flags.skip:
                status = "error"
                if error is None and not flags.allowed_error:
                    error = error_of(index, out)
        cells.append(cell_result(index, cell, flags, status, outputs))
    if all(cell.status != "ok" for cell in cells) and error is None:
        return finish(
            "skipped",
            reason="no stored outputs to compare with: the notebook was saved without them",
        )
    return finish("error" if error else "ok", cells=tuple(cells), error=error)
