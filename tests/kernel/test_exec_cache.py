"""Kernel tier: the execution cache on real kernels — the kernel records which course files a
notebook read, and the notebook runs again exactly when one of them changed."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from nbguard import runspec, settings
from nbguard.model import EnvInfo, NotebookRun
from nbguard.pipeline import find_notebooks
from nbguard.runner import Machine, Runner

ENV = EnvInfo("upcoming", "3.x", {}, "fp-this-interpreter", interpreter=Path(sys.executable))


def _stdout(run: NotebookRun) -> str:
    return "".join(out.data.get("stdout", "") for cell in run.cells for out in cell.outputs)


def test_a_notebook_runs_again_when_a_course_file_it_read_changed(tmp_path: Path) -> None:
    course = tmp_path / "course"
    (course / "data").mkdir(parents=True)
    (course / "requirements.txt").write_text("wobble==1.0\n")
    (course / "data" / "g.csv").write_text("9.81\n")
    (course / "data" / "unread.csv").write_text("1\n")
    (course / "helpers.py").write_text("SCALE = 1\n")
    (course / "lectures").mkdir()
    nb = new_notebook(
        cells=[
            new_code_cell("import glob, helpers"),
            new_code_cell("print(float(open('../data/g.csv').read()) * helpers.SCALE)"),
            new_code_cell("print(len(glob.glob('../data/*.csv')))"),
        ]
    )
    nbformat.write(nb, course / "lectures" / "g.ipynb")
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "timeout": 30})
    runner = Runner(config, Machine(runspec.build_options(config)), tmp_path / "scratch")
    (notebook,) = find_notebooks(config)

    first = runner.run(notebook, ENV)
    again = runner.run(notebook, ENV)
    (course / "data" / "unread.csv").write_text("2\n")  # a file it never opened
    still = runner.run(notebook, ENV)
    (course / "data" / "g.csv").write_text("1.62\n")
    moon = runner.run(notebook, ENV)
    (course / "helpers.py").write_text("SCALE = 2\n")
    scaled = runner.run(notebook, ENV)

    assert first.status == "ok", first.reason
    assert {"data/g.csv", "helpers.py", "data/"} <= set(first.reads or ())
    assert "data/unread.csv" not in (first.reads or ())
    assert [run.cached for run in (first, again, still, moon, scaled)] == [
        False,
        True,
        True,
        False,
        False,
    ]
    assert _stdout(again) == _stdout(first) == "9.81\n2\n"
    assert _stdout(moon) == "1.62\n2\n"
    assert _stdout(scaled) == "3.24\n2\n"
