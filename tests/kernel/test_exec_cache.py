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


def _record_of(tmp_path: Path, name: str, *cells: str) -> NotebookRun:
    course = tmp_path / name
    course.mkdir()
    (course / "requirements.txt").write_text("wobble==1.0\n")
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), course / "nb.ipynb")
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "timeout": 30})
    runner = Runner(config, Machine(runspec.build_options(config)), tmp_path / f"scratch-{name}")
    (notebook,) = find_notebooks(config)
    run = runner.run(notebook, ENV)
    assert run.status == "ok", run.reason
    return run


def test_the_kernel_records_what_of_its_env_a_notebook_used(tmp_path: Path) -> None:
    """What another env must hold the same for this run to stand for its own (alike.py):
    the site-packages entries it imported or read, every name it looked up (one that was
    not found too, and the kernel's own from its first import), and nothing that would make
    it depend on the whole env."""
    run = _record_of(
        tmp_path,
        "used",
        "try:\n    import nbguard_no_such_module\nexcept ImportError:\n    pass",
        "import rich\nprint(open(rich.__file__).read(1))",
    )

    touched = run.touched
    assert touched is not None and touched.anything is None
    assert {"rich", "ipykernel", "IPython"} <= set(touched.entries)
    assert {"nbguard_no_such_module", "rich", "ipykernel_launcher", "ipykernel"} <= set(
        touched.names
    )


def test_a_process_or_a_listing_of_the_distributions_makes_a_run_depend_on_everything(
    tmp_path: Path,
) -> None:
    spawned = _record_of(tmp_path, "spawned", "import subprocess\nsubprocess.run(['true'])")
    listed = _record_of(
        tmp_path,
        "listed",
        "import importlib.metadata\nprint(len(list(importlib.metadata.distributions())) > 0)",
    )

    assert spawned.touched is not None and spawned.touched.anything is not None
    assert "started a process" in spawned.touched.anything
    assert listed.touched is not None
    assert listed.touched.anything == "it listed the installed distributions"


def test_a_notebook_that_replaces_the_finders_depends_on_everything(tmp_path: Path) -> None:
    run = _record_of(tmp_path, "finders", "import sys\nsys.meta_path[:] = sys.meta_path[1:]")

    assert run.touched is not None
    assert run.touched.anything == "it changed the import system's finders"
