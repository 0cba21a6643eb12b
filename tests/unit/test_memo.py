"""Fast tier: the execution cache — what its key covers and what it ignores, the course files
a run read, its size bound, two writers at once, and the pipeline serving runs from it — on
in-memory notebooks and the fake backend."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from rich.console import Console

from nbguard import pipeline, settings
from nbguard.envs.interpreters import Interpreter
from nbguard.execute import ExecOptions, Memo
from nbguard.execute import memo as memo_module
from nbguard.execute.memo import code_digest, decode_run, encode_run, read_record
from nbguard.model import (
    CellError,
    CellResult,
    EnvInfo,
    Notebook,
    NotebookRun,
    Output,
    Tolerance,
    WarningRecord,
)
from nbguard.report import json_report, terminal
from nbguard.runner import Runner
from tests.support.fakes import FakeBackend, printed, write_course

ENV = EnvInfo("upcoming", "3.11.7", {"wobble": "2.0"}, "fp-1", Path("/env/bin/python"))
NOTEBOOK = Notebook("lectures/a.ipynb", "sha-1", "python3", "python")


def _write_notebook(path: Path, *cells: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=list(cells)), path)


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    _write_notebook(
        root / NOTEBOOK.path,
        new_markdown_cell("# Pendulum"),
        new_code_cell("import pandas as pd\nlog = pd.read_csv('../data/log.csv')"),
    )
    (root / "data").mkdir()
    (root / "data" / "log.csv").write_text("t,x\n0,1\n")
    return root


def memo(course: Path, options: ExecOptions | None = None, **kwargs: object) -> Memo:
    return Memo(course.parent / "cache" / "runs", course, options or ExecOptions(), **kwargs)  # type: ignore[arg-type]


def a_run(reads: tuple[str, ...] | None = ("data/log.csv",), **values: object) -> NotebookRun:
    cell = CellResult(1, "ok", "log = ...", (Output("stream", {"stdout": "12 rows\n"}),))
    run = NotebookRun(NOTEBOOK.path, ENV.name, "ok", 2.5, cells=(cell,), reads=reads)
    return replace(run, **values)  # type: ignore[arg-type]


def stored(course: Path, run: NotebookRun | None = None) -> tuple[Memo, str]:
    cache = memo(course)
    key = cache.key(NOTEBOOK, ENV)
    assert key is not None
    cache.put(key, run or a_run())
    return cache, key


def served(course: Path, key: str, **kwargs: object) -> NotebookRun | None:
    """What a new audit (a new process: nothing remembered) gets for `key`."""
    return memo(course, **kwargs).get(key, NOTEBOOK, ENV)


# --- the key: what changes it, what does not -------------------------------------------------


def _edited(course: Path, edit: Callable[[object], None]) -> str | None:
    path = course / NOTEBOOK.path
    nb = nbformat.read(path, as_version=4)
    edit(nb)
    nbformat.write(nb, path)
    return code_digest(path)


def test_saved_outputs_and_metadata_do_not_change_what_a_notebook_runs(course: Path) -> None:
    before = code_digest(course / NOTEBOOK.path)

    def resaved(nb: object) -> None:
        cell = nb.cells[1]  # type: ignore[attr-defined]
        cell.outputs = [new_output("stream", name="stdout", text="12 rows\n")]
        cell.execution_count = 7
        cell.metadata["collapsed"] = True
        nb.cells[0].source = "# Pendulum, reworded"  # type: ignore[attr-defined]
        nb.metadata["language_info"] = {"name": "python", "version": "3.12.1"}  # type: ignore[attr-defined]

    assert _edited(course, resaved) == before


@pytest.mark.parametrize(
    "edit",
    [
        lambda nb: setattr(nb.cells[1], "source", nb.cells[1].source + "\nprint(log)"),
        lambda nb: nb.cells[1].metadata.update(tags=["raises-exception"]),
        lambda nb: nb.cells[1].metadata.update(nbguard={"tolerance": 1e-3}),
        lambda nb: nb.cells.insert(0, new_markdown_cell("cell numbers move")),
    ],
    ids=["code", "tag", "cell-tolerance", "cells-moved"],
)
def test_code_tags_and_cell_positions_change_what_a_notebook_runs(
    course: Path, edit: Callable[[object], None]
) -> None:
    before = code_digest(course / NOTEBOOK.path)

    assert _edited(course, edit) != before


def test_the_env_and_the_execution_settings_are_part_of_the_key(course: Path) -> None:
    key = memo(course).key(NOTEBOOK, ENV)

    assert memo(course).key(NOTEBOOK, ENV) == key
    assert memo(course).key(NOTEBOOK, replace(ENV, fingerprint="fp-2")) != key
    assert memo(course).key(NOTEBOOK, replace(ENV, name="locked")) != key
    assert memo(course).key(replace(NOTEBOOK, path="lectures/b.ipynb"), ENV) != key
    assert memo(course, ExecOptions(cell_timeout=10)).key(NOTEBOOK, ENV) != key
    assert memo(course, ExecOptions(pass_env=("HF_TOKEN",))).key(NOTEBOOK, ENV) != key
    assert memo(course, course_code="none").key(NOTEBOOK, ENV) != key
    assert memo(course).key(NOTEBOOK, replace(ENV, fingerprint=None)) is None


def test_parameters_and_a_second_run_have_keys_of_their_own(course: Path) -> None:
    key = memo(course).key(NOTEBOOK, ENV)
    assert memo(course).key(NOTEBOOK, ENV, {}) == key
    assert memo(course).key(NOTEBOOK, ENV, {"n_points": 50}) != key
    assert memo(course).key(NOTEBOOK, ENV, {"n_points": 50}) != memo(course).key(
        NOTEBOOK, ENV, {"n_points": 51}
    )
    # The run that tells volatile outputs is kept apart: two real executions, never one.
    assert memo(course).key(NOTEBOOK, ENV, again=True) not in {key, None}


def test_the_same_course_checked_out_elsewhere_reuses_the_runs(
    course: Path, tmp_path: Path
) -> None:
    options = ExecOptions(python_path=(course,))
    elsewhere = tmp_path / "checkout"
    course.rename(elsewhere)
    moved = ExecOptions(python_path=(elsewhere,))

    assert memo(elsewhere, moved).key(NOTEBOOK, ENV) is not None
    elsewhere.rename(course)
    key = memo(course, options).key(NOTEBOOK, ENV)
    course.rename(elsewhere)
    assert memo(elsewhere, moved).key(NOTEBOOK, ENV) == key


# --- what the run read ------------------------------------------------------------------------


def test_a_run_is_served_while_the_files_it_read_are_unchanged(course: Path) -> None:
    _, key = stored(course)

    run = served(course, key)

    assert run is not None and run.cached
    assert run.cells == a_run().cells and run.duration_s == 2.5


def test_a_data_file_the_run_read_that_changed_or_vanished_means_a_new_run(course: Path) -> None:
    _, key = stored(course)

    (course / "data" / "log.csv").write_text("t,x\n0,2\n")
    assert served(course, key) is None
    (course / "data" / "log.csv").unlink()
    assert served(course, key) is None


def test_a_file_the_run_looked_for_in_vain_that_appeared_means_a_new_run(course: Path) -> None:
    _, key = stored(course, a_run(reads=("data/extra.csv",)))
    assert served(course, key) is not None

    (course / "data" / "extra.csv").write_text("new\n")

    assert served(course, key) is None


def test_a_new_file_in_a_folder_the_run_listed_means_a_new_run(course: Path) -> None:
    _, key = stored(course, a_run(reads=("data/",)))
    (course / "data" / "__pycache__").mkdir()  # a name the scratch copy leaves out anyway
    assert served(course, key) is not None

    (course / "data" / "log2.csv").write_text("t,x\n")

    assert served(course, key) is None


def test_files_the_run_did_not_read_do_not_matter(course: Path) -> None:
    _, key = stored(course)

    (course / "data" / "other.csv").write_text("unrelated\n")
    (course / "README.md").write_text("edited\n")

    assert served(course, key) is not None


def test_no_cache_executes_again(course: Path) -> None:
    _, key = stored(course)

    assert served(course, key, reuse=False) is None


@pytest.mark.parametrize(
    "run",
    [a_run(reads=None), a_run(status="timeout"), a_run(status="dead-kernel")],
    ids=["reads-unknown", "timeout", "dead-kernel"],
)
def test_runs_whose_dependencies_or_outcome_are_unsure_are_never_stored(
    course: Path, run: NotebookRun
) -> None:
    _, key = stored(course, run)

    assert served(course, key) is None


def test_a_damaged_entry_is_a_miss_not_a_failure(course: Path) -> None:
    cache, key = stored(course)
    (cache.root / f"{key}.json").write_text('{"format": "nbguard-run/2", "key"')

    assert served(course, key) is None


def test_the_kernels_record_becomes_course_paths(tmp_path: Path) -> None:
    scratch, course = tmp_path / "run" / "course", tmp_path / "course"
    record = tmp_path / "reads.jsonl"
    lines = [
        ["f", f"{scratch}/data/log.csv"],
        ["f", f"{scratch}/course_tools/__pycache__/fit.cpython-312.pyc"],
        ["d", f"{scratch}/data"],
        ["d", str(scratch)],
        ["f", f"{course}/data/raw.csv"],  # the course itself, by its absolute path
        ["f", "/etc/hosts"],
        ["f", f"{tmp_path}/run/tmp/x"],
        ["f", f"{scratch}/../../../etc/passwd"],  # a notebook writing its own record
    ]
    record.write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert read_record(record, scratch, course).reads == (
        "./",
        "course_tools/fit.py",
        "data/",
        "data/log.csv",
        "data/raw.csv",
    )
    record.write_text(json.dumps(["overflow", ""]) + "\n")
    assert read_record(record, scratch, course).reads is None
    assert read_record(tmp_path / "missing", scratch, course).reads is None


def test_a_stored_run_comes_back_as_it_was() -> None:
    run = NotebookRun(
        "a.ipynb",
        "upcoming",
        "error",
        1.5,
        cells=(
            CellResult(
                0,
                "error",
                "f()",
                (Output("error", {"ename": "E", "evalue": "x"}),),
                allowed_error=True,
                ignore_output=True,
                tolerance=Tolerance(1e-3, 0.0),
            ),
        ),
        error=CellError(0, "E", "x", ("tb 1", "tb 2")),
        warnings=(WarningRecord(0, "FutureWarning", "soon", "wobble"),),
        reason="why",
        later_errors=(CellError(2, "F", "y"),),
        volatile_paths=(("/tmp/run", "<course>"),),
        isolation="bwrap",
        reads=("data/",),
    )

    assert decode_run(json.loads(json.dumps(encode_run(run)))) == run


# --- bounded, shared ----------------------------------------------------------------------------


def test_the_least_recently_used_runs_go_first_when_the_cache_is_full(course: Path) -> None:
    notebooks = [replace(NOTEBOOK, path=f"lectures/{n}.ipynb") for n in "abc"]
    for notebook in notebooks[1:]:
        _write_notebook(course / notebook.path, new_code_cell("x = 1"))
    probe = memo(course)
    key = probe.key(notebooks[0], ENV)
    assert key is not None
    probe.put(key, a_run())
    size = (probe.root / f"{key}.json").stat().st_size
    cache = memo(course, limit=int(size * 2.5))  # room for two runs
    keys = [cache.key(nb, ENV) for nb in notebooks]
    entries = [cache.root / f"{key}.json" for key in keys]
    os.utime(entries[0], (1, 1))  # stored long ago
    assert keys[1] is not None and keys[2] is not None
    cache.put(keys[1], a_run())
    os.utime(entries[1], (2, 2))
    assert cache.get(str(keys[0]), notebooks[0], ENV) is not None  # used now: kept

    cache.put(keys[2], a_run())

    assert [entry.exists() for entry in entries] == [True, False, True]


def test_two_writers_at_once_leave_only_whole_entries(course: Path) -> None:
    notebooks = [replace(NOTEBOOK, path=f"lectures/n{i}.ipynb") for i in range(8)]
    for notebook in notebooks:
        _write_notebook(course / notebook.path, new_code_cell("x = 1"))
    big = a_run(cells=(CellResult(0, "ok", "x", (Output("stream", {"stdout": "y" * 50_000}),)),))
    size = len(json.dumps(encode_run(big)))
    errors: list[BaseException] = []

    def writer() -> None:
        cache = memo(course, limit=size * 4)  # as another process would: its own Memo
        try:
            for _ in range(5):
                for notebook in notebooks:
                    key = cache.key(notebook, ENV)
                    assert key is not None
                    cache.put(key, replace(big, notebook=notebook.path))
                    cache.get(key, notebook, ENV)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    left = list((course.parent / "cache" / "runs").glob("*.json"))
    assert 0 < len(left) <= 5
    for entry in left:
        assert json.loads(entry.read_text())["format"] == "nbguard-run/2"
    assert not list((course.parent / "cache" / "runs").glob("*.tmp"))


# --- through the pipeline -----------------------------------------------------------------------


def test_a_second_audit_serves_every_run_from_the_cache_and_says_so(tmp_path: Path) -> None:
    course = write_course(tmp_path, ["a.ipynb", "b.ipynb"])
    with_reads = {
        (nb, env): replace(printed(nb, env, "same"), reads=())
        for nb in ("a.ipynb", "b.ipynb")
        for env in ("locked", "upcoming")
    }
    packages = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache")})
    first = pipeline.run(config, backend=FakeBackend(packages, with_reads))
    again = FakeBackend(packages, with_reads)

    second = pipeline.run(config, backend=again)

    assert again.executed == []
    assert [nb.verdict for nb in second.notebooks] == [nb.verdict for nb in first.notebooks]
    data = json_report.to_json(second)
    assert all(run["cached"] for nb in data["notebooks"] for run in nb["runs"].values())
    out = io.StringIO()
    terminal.render(data, Console(file=out, width=200, color_system=None))
    assert "4 of 4 runs from the execution cache" in out.getvalue()
    assert not any(
        run["cached"]
        for nb in json_report.to_json(first)["notebooks"]
        for run in nb["runs"].values()
    )

    forced = FakeBackend(packages, with_reads)
    no_cache = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "cache": False})
    pipeline.run(no_cache, backend=forced)
    assert len(forced.executed) == 4


def test_a_fresh_run_is_a_real_execution_whatever_the_cache_holds(tmp_path: Path) -> None:
    course = write_course(tmp_path, ["a.ipynb"])
    scripts = {("a.ipynb", "locked"): replace(printed("a.ipynb", "locked", "1"), reads=())}
    backend = FakeBackend({"locked": {}, "upcoming": {}}, scripts)
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache")})
    runner = Runner(config, backend, tmp_path / "scratch")
    env = EnvInfo("locked", "3.11.7", {}, "fp", Path("/fake/bin/python"))
    notebook = pipeline.find_notebooks(config)[0]

    runs = [
        runner.run(notebook, env),
        runner.run(notebook, env),
        runner.run(notebook, env, fresh=True),
    ]

    assert [run.cached for run in runs] == [False, True, False]
    assert len(backend.executed) == 2


class _PinnedFingerprints(FakeBackend):
    """Envs whose fingerprint follows their packages, as real ones do."""

    def build(
        self, spec: settings.EnvSpec, interpreter: Interpreter, progress: Callable[[str], None]
    ) -> EnvInfo:
        env = super().build(spec, interpreter, progress)
        return replace(env, fingerprint=json.dumps(sorted(env.packages.items())))


def test_when_one_upcoming_package_moved_only_the_upcoming_runs_execute(tmp_path: Path) -> None:
    course = write_course(tmp_path, ["a.ipynb", "b.ipynb"])
    scripts = {
        (nb, env): replace(printed(nb, env, "same"), reads=())
        for nb in ("a.ipynb", "b.ipynb")
        for env in ("locked", "upcoming")
    }
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache")})
    last_night = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
    pipeline.run(config, backend=_PinnedFingerprints(last_night, scripts))
    tonight = _PinnedFingerprints({**last_night, "upcoming": {"wobble": "2.1"}}, scripts)

    pipeline.run(config, backend=tonight)

    assert sorted(tonight.executed) == [("a.ipynb", "upcoming"), ("b.ipynb", "upcoming")]


def test_the_cache_folder_is_counted_once_not_after_every_run(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache of 100,000 runs is not walked after each of an audit's runs: counted once,
    then again only when what was stored since may have filled it."""
    notebooks = [replace(NOTEBOOK, path=f"lectures/w{i}.ipynb") for i in range(6)]
    for notebook in notebooks:
        _write_notebook(course / notebook.path, new_code_cell("x = 1"))
    walks: list[Path] = []
    real_scan = memo_module._scan

    def counted(root: Path) -> Any:
        walks.append(root)
        return real_scan(root)

    monkeypatch.setattr(memo_module, "_scan", counted)
    roomy = memo(course, limit=10 * 1024**2)
    for notebook in notebooks[:3]:
        key = roomy.key(notebook, ENV)
        assert key is not None
        roomy.put(key, replace(a_run(), notebook=notebook.path))
    assert len(walks) == 1

    size = next((roomy.root).glob("*.json")).stat().st_size
    tight = memo(course, limit=int(size * 3.5))
    for notebook in notebooks[3:]:
        key = tight.key(notebook, ENV)
        assert key is not None
        tight.put(key, replace(a_run(), notebook=notebook.path))
    assert len(list(tight.root.glob("*.json"))) <= 3  # still bounded


def test_what_a_run_used_of_its_env_names_nothing_outside_it(tmp_path: Path) -> None:
    """The record is written in the kernel, where a notebook can append to it: an entry that
    would lead out of site-packages is dropped, not compared."""
    record = tmp_path / "reads.jsonl"
    lines = [
        ["s", "numpy"],
        ["s", "/etc"],
        ["s", "../../../../etc"],
        ["s", "numpy/core"],
        ["n", "json"],
        ["e", "share/jupyter/x.json"],
        ["e", "/etc/passwd"],
    ]
    record.write_text("".join(json.dumps(line) + "\n" for line in lines))

    touched = read_record(record, tmp_path / "scratch", tmp_path / "course").touched

    assert touched is not None
    assert touched.entries == ("numpy",)
    assert touched.names == ("json",)
    assert touched.env_files == ("share/jupyter/x.json",)
