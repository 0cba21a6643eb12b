"""Fast tier: papermill parameters — read from [tool.nbguard.parameters], named sets and --param,
matched to notebooks, checked against each notebook's parameters cell, injected by papermill,
cells reported as the file numbers them, and shown in every report."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbguard import cli, pipeline, runspec, settings
from nbguard.errors import ConfigError
from nbguard.execute import parameters
from nbguard.model import CellError, CellResult, NotebookRun, WarningRecord
from nbguard.report import html_page, json_report, markdown, terminal
from tests.support.fakes import FakeBackend

PACKAGES = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
CONFIG = """\
[tool.nbguard.parameters]
"homework/hw1_fit.ipynb" = { n_points = 2000, label = "full" }
"*.ipynb" = { seed = 1 }

[tool.nbguard.parameter-sets.ci]
"homework/hw1_fit.ipynb" = { n_points = 50 }
"""


def write_notebook(path: Path, *cells: object) -> None:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def parameters_cell(source: str) -> object:
    return new_code_cell(source, metadata={"tags": ["parameters"]})


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    root.mkdir()
    (root / "requirements.txt").write_text("wobble==1.0\n")
    (root / "requirements.in").write_text("wobble\n")
    (root / "pyproject.toml").write_text(CONFIG)
    write_notebook(
        root / "homework" / "hw1_fit.ipynb",
        new_markdown_cell("# Fit"),
        parameters_cell("n_points = 2000  # the full data set\nlabel = 'full'\nseed = 0"),
        new_code_cell("print(n_points)"),
    )
    write_notebook(
        root / "lectures" / "intro.ipynb", parameters_cell("seed = 0"), new_code_cell("1")
    )
    return root


def load(course: Path, **overrides: object) -> settings.Config:
    return settings.load(course, {"cache-dir": str(course.parent / "cache"), **overrides})


# --- settings ---------------------------------------------------------------------------------


def test_the_table_gives_each_notebook_its_values_and_a_later_rule_wins(course: Path) -> None:
    config = load(course)

    assert runspec.notebook_parameters(config, "homework/hw1_fit.ipynb") == {
        "n_points": 2000,
        "label": "full",
        "seed": 1,
    }
    # A glob without "/" is a file name anywhere in the course.
    assert runspec.notebook_parameters(config, "lectures/intro.ipynb") == {"seed": 1}


def test_a_named_set_overrides_the_table_and_the_command_line_overrides_both(
    course: Path,
) -> None:
    config = load(course, **{"parameter-set": "ci"})
    assert runspec.notebook_parameters(config, "homework/hw1_fit.ipynb")["n_points"] == 50

    config = load(course, **{"parameter-set": "ci", "parameters": ["hw1_fit.ipynb:n_points=7"]})
    assert runspec.notebook_parameters(config, "homework/hw1_fit.ipynb")["n_points"] == 7


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50", 50),
        ("0.5", 0.5),
        ("true", True),
        ('"a b"', "a b"),
        ("[1, 2]", [1, 2]),
        ("abc", "abc"),
    ],
)
def test_a_command_line_value_reads_as_toml_else_as_text(
    course: Path, text: str, value: object
) -> None:
    config = load(course, parameters=[f"intro.ipynb:seed={text}"])

    assert runspec.notebook_parameters(config, "lectures/intro.ipynb") == {"seed": value}


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("n_points=50", "NOTEBOOK:NAME=VALUE"),
        ("hw1_fit.ipynb:n_points", "NOTEBOOK:NAME=VALUE"),
        ("hw1_fit.ipynb:2x=1", "Python identifiers"),
    ],
)
def test_a_malformed_param_says_what_it_must_be(course: Path, flag: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load(course, parameters=[flag])


def test_an_undefined_set_names_the_sets_there_are(course: Path) -> None:
    with pytest.raises(ConfigError, match=r"parameter set 'nightly' is not defined .*sets: ci"):
        load(course, **{"parameter-set": "nightly"})


def test_parameters_with_the_stored_baseline_are_refused(course: Path) -> None:
    with pytest.raises(ConfigError, match="--baseline stored"):
        load(course, baseline="stored")


# --- checked before any kernel starts -----------------------------------------------------------


def test_a_parameter_the_notebook_does_not_have_names_notebook_and_parameter(
    course: Path,
) -> None:
    backend = FakeBackend(PACKAGES)
    config = load(course, parameters=["hw1_fit.ipynb:n_pointz=5"])

    with pytest.raises(ConfigError) as caught:
        pipeline.run(config, backend=backend)

    assert str(caught.value) == (
        "homework/hw1_fit.ipynb has no parameter n_pointz "
        "(its parameters cell declares: n_points, label, seed)"
    )
    assert backend.executed == []


def test_a_glob_that_names_no_notebook_is_an_error(course: Path) -> None:
    config = load(course, parameters=["hw1_fitt.ipynb:n_points=5"])

    with pytest.raises(ConfigError, match=r"'hw1_fitt\.ipynb', which names no notebook"):
        pipeline.run(config, backend=FakeBackend(PACKAGES))


def test_the_cli_says_it_in_one_line_with_exit_2(
    course: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["run", str(course), "--cache-dir", str(course.parent / "c"), "--param", "intro.ipynb:x=1"]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "nbguard: error: lectures/intro.ipynb has no parameter x (its parameters cell "
        "declares: seed)"
    ]


def test_each_notebook_report_shows_its_parameters_in_every_format(course: Path) -> None:
    report = pipeline.run(load(course, **{"parameter-set": "ci"}), backend=FakeBackend(PACKAGES))
    data = json_report.to_json(report)

    shown = {nb["path"]: nb["parameters"] for nb in data["notebooks"]}
    assert shown == {
        "homework/hw1_fit.ipynb": {"n_points": 50, "label": "full", "seed": 1},
        "lectures/intro.ipynb": {"seed": 1},
    }
    row, _ = terminal.row_text(data["notebooks"][0], "locked")
    assert 'parameters: n_points=50, label="full", seed=1' in row
    assert "parameters: n_points=50, label=&quot;full&quot;, seed=1" in html_page.render(data)
    assert 'parameters: n\\_points=50, label="full", seed=1' in markdown.render(data)
    # The settings record the rules, in the order they apply.
    assert data["settings"]["parameter-set"] == "ci"
    assert ["homework/hw1_fit.ipynb", "n_points", 50] in data["settings"]["parameters"]


# --- injection --------------------------------------------------------------------------------


def test_papermill_injects_its_cell_after_the_parameters_cell() -> None:
    nb = new_notebook(
        cells=[new_markdown_cell("# t"), parameters_cell("n = 1"), new_code_cell("n")]
    )

    injected, inserted = parameters.inject(nb, {"n": 50, "name": "it's"})

    assert inserted == 2
    assert [cell.source for cell in injected.cells] == [
        "# t",
        "n = 1",
        '# Parameters\nn = 50\nname = "it\'s"\n',
        "n",
    ]
    assert injected.cells[2].metadata["tags"] == ["injected-parameters"]
    assert len(nb.cells) == 3  # the notebook read from the course is left as it was


def test_an_injected_cell_saved_in_the_notebook_is_replaced_in_place() -> None:
    saved = new_code_cell("n = 9", metadata={"tags": ["injected-parameters"]})
    nb = new_notebook(cells=[parameters_cell("n = 1"), saved, new_code_cell("n")])

    injected, inserted = parameters.inject(nb, {"n": 50})

    assert inserted is None
    assert [cell.source for cell in injected.cells][1] == "# Parameters\nn = 50\n"


def test_cells_are_numbered_as_in_the_file_after_injection() -> None:
    def cell(index: int) -> CellResult:
        return CellResult(index, "ok", f"cell {index}")

    error = CellError(4, "ValueError", "bad")
    run = NotebookRun(
        "nb.ipynb",
        "upcoming",
        "error",
        1.0,
        cells=(cell(1), cell(2), cell(3), CellResult(4, "error", "f()")),
        error=error,
        warnings=(WarningRecord(3, "DeprecationWarning", "old", None),),
        later_errors=(CellError(2, "TypeError", "x"),),
    )

    restored = parameters.restore_cells(run, inserted=2)

    assert [c.index for c in restored.cells] == [1, 2, 3]
    assert [c.source for c in restored.cells] == ["cell 1", "cell 3", "f()"]
    assert restored.error == CellError(3, "ValueError", "bad")
    assert restored.warnings[0].cell == 2
    # What the injected cell raised counts for the parameters cell before it.
    assert restored.later_errors[0].cell == 1


def test_declared_reads_the_names_papermill_reads(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    write_notebook(path, parameters_cell("a = 1  # doc\nb: str = 'x'\n# c = 3"), new_code_cell(""))

    assert parameters.declared(path) == {"a": "1", "b": "'x'"}
    write_notebook(path, new_code_cell("a = 1"))
    assert parameters.declared(path) is None


def test_init_writes_the_parameter_table_commented_out(tmp_path: Path) -> None:
    from nbguard import init

    course = tmp_path / "course"
    write_notebook(course / "hw.ipynb", new_code_cell("1"))
    (course / "requirements.txt").write_text("numpy==1.26.4\n")
    init.init(course)

    written = (course / "nbguard.toml").read_text()
    assert "# [parameters]" in written
    assert "# [parameter-sets.ci]" in written
    assert json.dumps(written)  # plain text, nothing else
