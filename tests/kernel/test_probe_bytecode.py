"""Kernel tier: a real kernel records the env modules a notebook imported, and a probe env
compiled from that record runs the notebook from nbguard's bytecode, with the same result."""

from __future__ import annotations

import os
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard.envs.bytecode import compile_imports
from nbguard.execute import ExecOptions, execute_notebook
from nbguard.model import Notebook, NotebookRun


def test_a_probe_env_compiled_from_a_runs_imports_imports_that_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on many machines (and in a read-only sandbox): the kernel itself writes no bytecode.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = tmp_path / "probe-env"
    venv.create(env, with_pip=False)
    (site,) = (env / "lib").glob("python*/site-packages")
    # The kernel's machinery from nbguard's own env, beneath the probe's one package.
    machinery = sysconfig.get_paths()["purelib"]
    (site / "kernel.pth").write_text(machinery + "\n")
    (site / "probed").mkdir()
    (site / "probed" / "__init__.py").write_text("")
    (site / "probed" / "part.py").write_text("VALUE = 1\n")
    course = tmp_path / "course"
    course.mkdir()
    nb = new_notebook(
        cells=[new_code_cell("import probed.part"), new_code_cell("probed.part.VALUE")]
    )
    nbformat.write(nb, course / "nb.ipynb")
    notebook = Notebook(path="nb.ipynb", sha256="0" * 64, kernel_name="python3", language="python")
    python = env / "bin" / "python"

    def run(work: str) -> NotebookRun:
        # The sandbox hides /tmp: nbguard's own env may live there (a CI clone), so the
        # kernel may read it, as a real env's path entries.
        options = ExecOptions(cell_timeout=20, startup_timeout=60, readable=(Path(machinery),))
        return execute_notebook(
            notebook, course, "upcoming-probe", python, options, tmp_path / work
        )

    first = run("first")
    pycache = site / "probed" / "__pycache__"
    written_by_kernel = pycache.exists()
    done = compile_imports(python, first.imports, tmp_path / "store")
    # Changed behind the bytecode's back (same size, same mtime): the next run shows 1 only
    # if its kernel imports the bytecode nbguard wrote.
    part = site / "probed" / "part.py"
    stamp = part.stat()
    part.write_text("VALUE = 7\n")
    os.utime(part, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    second = run("second")

    assert first.status == "ok", first.reason
    assert {"probed/__init__.py", "probed/part.py", "ipykernel/kernelapp.py"} <= set(first.imports)
    assert not written_by_kernel
    assert done.startswith("2 modules compiled")  # ipykernel's files are not in this env
    assert sorted(path.name.split(".")[0] for path in pycache.iterdir()) == ["__init__", "part"]
    assert second.status == "ok", second.reason
    assert [cell.outputs for cell in second.cells] == [cell.outputs for cell in first.cells]
    assert "'1'" in repr(first.cells[1].outputs)
