"""Kernel tier: the warning capture next to libraries that replace warnings.showwarning, and
records a notebook forges under the capture's mime type."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard.execute import CAPTURE_MIME, ExecOptions, execute_notebook
from nbguard.model import Notebook, NotebookRun, WarningRecord

Runner = Callable[..., NotebookRun]

# What astropy does at import: keep the showwarning it finds, put its own in its place, and
# hand every warning it does not handle itself to the one it kept.
REPLACES_SHOWWARNING = """
import warnings

_kept = warnings.showwarning


def _showwarning(message, category, filename, lineno, file=None, line=None):
    return _kept(message, category, filename, lineno, file, line)


warnings.showwarning = _showwarning
"""


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    course = tmp_path / "course"
    course.mkdir()
    (course / "replaces_showwarning.py").write_text(REPLACES_SHOWWARNING)

    def runner(*sources: str) -> NotebookRun:
        nb = new_notebook(cells=[new_code_cell(source) for source in sources])
        (course / "nb.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        return execute_notebook(
            Notebook("nb.ipynb", "0" * 64, "python3", "python"),
            course,
            "upcoming",
            Path(sys.executable),
            ExecOptions(cell_timeout=30),
            tmp_path / "work",
        )

    return runner


def test_a_library_replacing_showwarning_keeps_warnings_working(run: Runner) -> None:
    result = run(
        "import warnings\nimport replaces_showwarning",
        "warnings.warn('a user warning', UserWarning)\n"
        "warnings.warn('old api', DeprecationWarning)\n"
        "print('after')",
        "warnings.warn('another user warning', UserWarning)\n"
        "warnings.warn('older api', FutureWarning)",
        "print('still fine')",
    )

    assert result.status == "ok", result.reason
    assert [record.message for record in result.warnings] == ["old api", "older api"]
    assert result.warnings[0] == WarningRecord(1, "DeprecationWarning", "old api", None)
    stderr = [
        text for cell in result.cells for out in cell.outputs for name, text in out.data.items()
        if name == "stderr"
    ]  # fmt: skip
    assert sum(text.count("UserWarning: a user warning") for text in stderr) == 1
    assert sum(text.count("UserWarning: another user warning") for text in stderr) == 1
    assert "RecursionError" not in json.dumps([str(cell.outputs) for cell in result.cells])


def test_an_output_forged_with_the_capture_mime_type_is_no_warning(run: Runner) -> None:
    fake = {"category": "DeprecationWarning", "message": "forged", "package": "numpy"}
    result = run(
        "from IPython.display import display\n"
        f"display({{{CAPTURE_MIME!r}: {{'warnings': [{fake!r}]}}}}, raw=True)\n"
        f"display({{{CAPTURE_MIME!r}: {{'warnings': [{fake!r}], 'key': 'guess'}}}}, raw=True)",
        "import warnings\nwarnings.warn('real one', DeprecationWarning)",
    )

    assert result.status == "ok", result.reason
    assert [(r.cell, r.message) for r in result.warnings] == [(1, "real one")]
    forged = [out for out in result.cells[0].outputs if CAPTURE_MIME in out.data]
    assert len(forged) == 2  # the notebook's own outputs, shown as such


# An installed library: a deprecated function, and a function of its own that calls it.
LIBRARY = """
import warnings


def old():
    warnings.warn("old() is deprecated; use new() instead", DeprecationWarning, stacklevel=2)


def internal():
    old()
"""
# The course's own module, warning at its own line.
COURSE_HELPER = """
import warnings


def legacy():
    warnings.warn("legacy() will change", FutureWarning)
"""


def test_each_record_says_whether_the_courses_code_or_a_library_triggered_it(
    run: Runner, tmp_path: Path
) -> None:
    # Inside the course, which the kernel sees as its scratch copy, the notebook's folder.
    site = tmp_path / "course" / "vendor" / "site-packages"
    site.mkdir(parents=True)
    (site / "installed_lib.py").write_text(LIBRARY)
    (tmp_path / "course" / "course_helper.py").write_text(COURSE_HELPER)

    result = run(
        "import os, sys\nsys.path.insert(0, os.path.abspath('vendor/site-packages'))\n"
        "import installed_lib, course_helper",
        "installed_lib.old()",
        "installed_lib.internal()",
        "course_helper.legacy()",
        "same = 1 is 1",
    )

    assert result.status == "ok", result.error
    assert [(r.cell, r.category, r.origin) for r in result.warnings] == [
        (1, "DeprecationWarning", "course"),  # the cell called the deprecated function
        (2, "DeprecationWarning", "library"),  # the library called it itself
        (3, "FutureWarning", "course"),  # the course's own module
        (4, "SyntaxWarning", "course"),  # the compiler on the cell: a record, once
    ]
    assert [cell.outputs for cell in result.cells if cell.outputs] == []  # no stderr
