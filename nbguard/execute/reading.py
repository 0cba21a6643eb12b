"""Reading a course notebook for execution, and the one-line reason a damaged file gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

# What reading a damaged notebook file raises (nbformat's own errors are ValueErrors, or
# jsonschema's ValidationError; JSON of the wrong shape gives the lookup/attribute ones).
UNREADABLE = (
    OSError,
    ValueError,
    LookupError,
    AttributeError,
    TypeError,
    nbformat.ValidationError,
)


def read_notebook(path: Path) -> Any:
    """The notebook as nbformat v4, every cell with metadata, source and cell_type."""
    # nbformat.read would also validate, which warns (FutureWarning) about cells without ids
    # in older notebooks; execution needs none of it, only the keys read below.
    untyped: Any = nbformat
    nb = untyped.convert(untyped.reader.reads(path.read_text(encoding="utf-8")), 4)
    for cell in nb.cells:
        cell.setdefault("metadata", untyped.NotebookNode())
        cell.setdefault("source", "")
        cell.setdefault("cell_type", "raw")
    return nb


def unreadable_reason(notebook_path: str, exc: Exception) -> str:
    """Why the run of a notebook that could not be read (one of UNREADABLE) failed."""
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot read {notebook_path}: {cause}"
