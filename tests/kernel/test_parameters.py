"""Kernel tier: papermill parameters from the config reach real kernels in every env, and the
runs are still compared cell by cell, numbered as the notebook file numbers its cells."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbguard import pipeline, settings
from nbguard.execute import ExecOptions, execute_notebook
from nbguard.model import EnvInfo, Notebook, NotebookRun
from nbguard.report import json_report
from tests.support.courses import snapshot
from tests.support.fakes import FakeBackend

CONFIG = """\
[tool.nbguard.parameters]
"homework/fit.ipynb" = { n_points = 50 }
"""


class OwnKernels(FakeBackend):
    """Both envs are nbguard's own interpreter; `upcoming`'s kernels see FACTOR=2, as if an
    upgrade doubled what the notebook prints."""

    def execute(
        self, notebook: Notebook, course: Path, env: EnvInfo, options: ExecOptions, workdir: Path
    ) -> NotebookRun:
        self.executed.append((notebook.path, env.name))
        if env.name == "upcoming":
            options = replace(options, kernel_env={**options.kernel_env, "FACTOR": "2"})
        return execute_notebook(notebook, course, env.name, Path(sys.executable), options, workdir)


def test_config_parameters_run_in_both_envs_and_outputs_are_still_compared(
    tmp_path: Path,
) -> None:
    course = tmp_path / "course"
    course.mkdir()
    (course / "requirements.txt").write_text("wobble==1.0\n")
    (course / "requirements.in").write_text("wobble\n")
    (course / "pyproject.toml").write_text(CONFIG)
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Fit a line"),
            new_code_cell("n_points = 2000  # the full data", metadata={"tags": ["parameters"]}),
            new_code_cell("import os\nprint(n_points * int(os.environ.get('FACTOR', '1')))"),
            new_code_cell("n_points"),
        ]
    )
    path = course / "homework" / "fit.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    before = snapshot(course)
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "jobs": 2})

    report = pipeline.run(config, backend=OwnKernels({"locked": {}, "upcoming": {}}))

    data = json_report.to_json(report)
    [fit] = data["notebooks"]
    assert fit["parameters"] == {"n_points": 50}
    # The injected cell is no change; the cell that does change is named as the file has it.
    assert fit["verdict"] == "changed"
    assert [(c["cell"], c["before"], c["after"]) for c in fit["changes"]] == [(2, "50\n", "100\n")]
    for env in ("locked", "upcoming"):
        run = report.notebooks[0].runs[env]
        assert [cell.index for cell in run.cells] == [1, 2, 3]
        assert run.cells[2].outputs[0].data["text/plain"] == "50"
    # The course's notebook is left as it was: the injection happened in the run's copy.
    assert snapshot(course) == before
