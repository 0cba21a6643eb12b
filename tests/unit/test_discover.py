"""Fast tier: finding a course's notebooks and what each asks for, on tiny files in tmp_path."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v4

from nbguard.discover import discover, read_notebook
from nbguard.settings import ALWAYS_EXCLUDED


def add_notebook(course: Path, relative: str, **metadata: Any) -> Path:
    notebook = v4.new_notebook(cells=[v4.new_code_cell("1 + 1")], metadata=metadata)
    path = course / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def found(
    course: Path, include: Sequence[str] = ("**/*.ipynb",), exclude: Sequence[str] = ()
) -> list[str]:
    return [nb.path for nb in discover(course, include, exclude, ALWAYS_EXCLUDED)]


@pytest.fixture
def course(tmp_path: Path) -> Path:
    for relative in (
        "intro.ipynb",
        "lectures/01_vectors.ipynb",
        "lectures/02_matrices.ipynb",
        "lectures/extra/03_bonus.ipynb",
        "homework/hw01.ipynb",
    ):
        add_notebook(tmp_path, relative)
    (tmp_path / "lectures" / "notes.md").write_text("# not a notebook\n")
    return tmp_path


def test_double_star_finds_every_notebook_at_any_depth_sorted(course: Path) -> None:
    assert found(course) == [
        "homework/hw01.ipynb",
        "intro.ipynb",
        "lectures/01_vectors.ipynb",
        "lectures/02_matrices.ipynb",
        "lectures/extra/03_bonus.ipynb",
    ]


def test_a_single_star_stays_in_its_folder(course: Path) -> None:
    assert found(course, ["lectures/*.ipynb"]) == [
        "lectures/01_vectors.ipynb",
        "lectures/02_matrices.ipynb",
    ]


def test_several_globs_add_up_without_duplicates(course: Path) -> None:
    assert found(course, ["lectures/**/*.ipynb", "lectures/*.ipynb", "homework/*.ipynb"]) == [
        "homework/hw01.ipynb",
        "lectures/01_vectors.ipynb",
        "lectures/02_matrices.ipynb",
        "lectures/extra/03_bonus.ipynb",
    ]


@pytest.mark.parametrize(
    "relative",
    [
        "lectures/.ipynb_checkpoints/01_vectors-checkpoint.ipynb",
        ".ipynb_checkpoints/intro-checkpoint.ipynb",
        "_build/html/intro.ipynb",
        "book/_build/jupyter_execute/intro.ipynb",
        ".nbguard/scratch/intro.ipynb",
        ".git/intro.ipynb",
        "node_modules/pkg/demo.ipynb",
    ],
)
def test_tool_folders_are_never_searched(course: Path, relative: str) -> None:
    add_notebook(course, relative)

    assert relative not in found(course)
    assert relative not in found(course, ["**"])


def test_a_virtualenv_inside_the_course_is_not_searched(course: Path) -> None:
    venv = course / "env-for-students"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    add_notebook(venv, "share/jupyter/tutorial.ipynb")

    assert not [path for path in found(course) if path.startswith("env-for-students/")]


def test_user_excludes_leave_notebooks_out(course: Path) -> None:
    assert found(course, exclude=["lectures/extra/**", "homework/*.ipynb"]) == [
        "intro.ipynb",
        "lectures/01_vectors.ipynb",
        "lectures/02_matrices.ipynb",
    ]


def test_paths_are_posix_and_relative_to_the_course(course: Path) -> None:
    (notebook,) = discover(course, ["lectures/extra/*.ipynb"], (), ALWAYS_EXCLUDED)

    assert notebook.path == "lectures/extra/03_bonus.ipynb"
    assert len(notebook.sha256) == 64


# --- what a notebook asks for -------------------------------------------------------------------


def test_a_notebook_without_a_kernelspec_is_python_and_runs(tmp_path: Path) -> None:
    add_notebook(tmp_path, "plain.ipynb")

    notebook = read_notebook(tmp_path, "plain.ipynb")

    assert (notebook.kernel_name, notebook.language, notebook.skip_reason) == (
        "python3",
        "python",
        None,
    )


def test_a_python_kernelspec_runs(tmp_path: Path) -> None:
    add_notebook(
        tmp_path,
        "py.ipynb",
        kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
    )

    assert read_notebook(tmp_path, "py.ipynb").skip_reason is None


def test_metadata_skip_with_a_reason_is_shown(tmp_path: Path) -> None:
    add_notebook(tmp_path, "gpu.ipynb", nbguard={"skip": "  needs a GPU  "})

    assert read_notebook(tmp_path, "gpu.ipynb").skip_reason == "notebook metadata: needs a GPU"


def test_metadata_skip_true_is_skipped(tmp_path: Path) -> None:
    add_notebook(tmp_path, "skip.ipynb", nbguard={"skip": True})

    reason = read_notebook(tmp_path, "skip.ipynb").skip_reason
    assert reason is not None
    assert "nbguard.skip" in reason


@pytest.mark.parametrize("skip", [False, ""])
def test_metadata_skip_false_or_empty_runs(tmp_path: Path, skip: object) -> None:
    add_notebook(tmp_path, "nb.ipynb", nbguard={"skip": skip})

    assert read_notebook(tmp_path, "nb.ipynb").skip_reason is None


def test_an_r_notebook_is_skipped_naming_its_kernel(tmp_path: Path) -> None:
    add_notebook(
        tmp_path, "stats.ipynb", kernelspec={"name": "ir", "display_name": "R", "language": "R"}
    )

    notebook = read_notebook(tmp_path, "stats.ipynb")

    assert notebook.language == "R"
    assert notebook.skip_reason == "non-Python kernel 'ir' (R)"


def test_skipped_notebooks_are_still_discovered(tmp_path: Path) -> None:
    add_notebook(
        tmp_path,
        "a.ipynb",
        kernelspec={"name": "julia-1.10", "display_name": "Julia", "language": "julia"},
    )
    add_notebook(tmp_path, "b.ipynb")

    notebooks = discover(tmp_path, ["**/*.ipynb"], (), ALWAYS_EXCLUDED)

    assert [(nb.path, nb.skip_reason is not None) for nb in notebooks] == [
        ("a.ipynb", True),
        ("b.ipynb", False),
    ]


def test_a_notebook_that_is_not_json_is_returned_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text('{"cells": [ <<<<<<< HEAD', encoding="utf-8")
    add_notebook(tmp_path, "fine.ipynb")

    notebooks = discover(tmp_path, ["**/*.ipynb"], (), ALWAYS_EXCLUDED)

    assert [nb.path for nb in notebooks] == ["broken.ipynb", "fine.ipynb"]
    assert notebooks[0].skip_reason is None  # it will run, fail and say why


def test_a_notebook_that_is_not_utf8_is_returned_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "latin1.ipynb").write_bytes(b'{"cells": "caf\xe9"}')

    assert [nb.path for nb in discover(tmp_path, ["**/*.ipynb"], (), ALWAYS_EXCLUDED)] == [
        "latin1.ipynb"
    ]


def test_a_notebook_with_malformed_metadata_is_returned_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "odd.ipynb").write_text(
        '{"metadata": {"kernelspec": "python3"}, "cells": [], "nbformat": 4, "nbformat_minor": 5}',
        encoding="utf-8",
    )

    assert [nb.path for nb in discover(tmp_path, ["**/*.ipynb"], (), ALWAYS_EXCLUDED)] == [
        "odd.ipynb"
    ]


def test_a_file_name_that_is_not_utf8_is_skipped_with_one_line(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("1")]), course / "fine.ipynb")
    (course / os.fsdecode(b"bad\xffname.ipynb")).write_bytes((course / "fine.ipynb").read_bytes())

    found = {nb.path: nb for nb in discover(course, ["**/*.ipynb"], [], ALWAYS_EXCLUDED)}

    assert set(found) == {"fine.ipynb", "bad\\xffname.ipynb"}
    bad = found["bad\\xffname.ipynb"]
    assert bad.skip_reason == "its file name is not valid UTF-8: rename it to run it"
    json.dumps(bad.path, ensure_ascii=False).encode("utf-8")  # every report can write it
