"""Papermill parameters: the names a notebook's `parameters` cell declares, and values injected
with papermill's own translators as an `injected-parameters` cell, reported by file cell."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nbguard.execute.reading import read_notebook
from nbguard.model import CellError, NotebookRun, WarningRecord

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def declared(path: Path) -> dict[str, str] | None:
    """The parameters of the notebook's first cell tagged `parameters`, each name with its
    default as written, as papermill's Python translator reads them; None when no cell has
    the tag."""
    from papermill.translators import papermill_translators

    nb = read_notebook(path)
    index = _tagged(nb, PARAMETERS_TAG)
    if index is None:
        return None
    translator = papermill_translators.find_translator("python3", "python")
    return {str(p.name): str(p.default) for p in translator.inspect(nb.cells[index])}


def unknown(path: Path, values: Mapping[str, object]) -> str | None:
    """Why `values` cannot be given to the notebook at `path` (a name its parameters cell
    does not declare, or no such cell); None when they can."""
    names = declared(path)
    if names is None:
        return f"has no cell tagged {PARAMETERS_TAG!r} to take parameters ({', '.join(values)})"
    missing = [name for name in values if name not in names]
    if not missing:
        return None
    has = ", ".join(names) if names else "none"
    return f"has no parameter {', '.join(missing)} (its parameters cell declares: {has})"


def inject(nb: Any, values: Mapping[str, object]) -> tuple[Any, int | None]:
    """`nb` with `values` in an `injected-parameters` cell after its parameters cell, made by
    papermill (an injected cell already saved in the notebook is replaced, as papermill
    does); and the index of the inserted cell, None when none was inserted."""
    # papermill's import brings its engines along (most of a second); only runs with
    # parameters pay it.
    from papermill.parameterize import parameterize_notebook

    source = copy.deepcopy(nb)
    for cell in source.cells:
        cell.metadata.setdefault("tags", [])  # papermill reads every cell's tags
    source.metadata.setdefault("papermill", {})
    count = len(source.cells)
    parameterized = parameterize_notebook(
        source, dict(values), kernel_name="python3", language="python"
    )
    inserted = _tagged(parameterized, INJECTED_TAG) if len(parameterized.cells) > count else None
    return parameterized, inserted


def restore_cells(run: NotebookRun, inserted: int | None) -> NotebookRun:
    """`run` with cells numbered as in the notebook file: the inserted cell's own result
    dropped (what it raised counts for the parameters cell before it), later cells moved
    back by one, so reports name the cells the author sees."""
    if inserted is None:
        return run

    def index(cell: int) -> int:
        return cell - 1 if cell >= inserted else cell

    def error(value: CellError) -> CellError:
        return replace(value, cell=index(value.cell))

    def warning(value: WarningRecord) -> WarningRecord:
        return replace(value, cell=index(value.cell))

    return replace(
        run,
        cells=tuple(
            replace(cell, index=index(cell.index)) for cell in run.cells if cell.index != inserted
        ),
        error=error(run.error) if run.error is not None else None,
        warnings=tuple(warning(record) for record in run.warnings),
        later_errors=tuple(error(value) for value in run.later_errors),
    )


def _tagged(nb: Any, tag: str) -> int | None:
    return next(
        (i for i, cell in enumerate(nb.cells) if tag in (cell.metadata.get("tags") or ())), None
    )
