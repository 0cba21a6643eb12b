"""Fast tier: the whole pipeline and the CLI's exit codes on a fake backend — verdicts,
the internal-error boundary, env failures, interruption — with no env and no kernel."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from nbguard import cli, compare, pipeline, settings
from nbguard.errors import ConfigError, EnvironmentBuildError
from nbguard.model import Comparison, EnvInfo, Notebook, NotebookRun, Report
from nbguard.report import json_report, terminal
from tests.support.courses import snapshot
from tests.support.fakes import FakeBackend, Script, printed, raised, write_course

NOTEBOOKS = ["a_same.ipynb", "b_changed.ipynb", "c_broken.ipynb", "d_fine.ipynb"]
PACKAGES = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
SCRIPTS: dict[tuple[str, str], Script] = {
    ("b_changed.ipynb", "locked"): printed("b_changed.ipynb", "locked", "Curve(n=6)"),
    ("b_changed.ipynb", "upcoming"): printed("b_changed.ipynb", "upcoming", "<Curve n=6>"),
    ("c_broken.ipynb", "upcoming"): raised(
        "c_broken.ipynb", "upcoming", "AttributeError", "module 'wobble' has no attribute 'old'"
    ),
}

# Fails the same way in both envs: already-broken, which fails only a --strict run.
BOTH_FAIL: dict[tuple[str, str], Script] = {
    ("a_same.ipynb", env): raised("a_same.ipynb", env, "E", "x") for env in ("locked", "upcoming")
}


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return write_course(tmp_path, NOTEBOOKS)


def audit(course: Path, backend: FakeBackend, **overrides: object) -> Report:
    config = settings.load(course, {"cache-dir": str(course.parent / "cache"), **overrides})
    return pipeline.run(config, backend=backend)


def verdicts(report: Report) -> dict[str, str]:
    return {nb.path: nb.verdict for nb in report.notebooks}


def test_each_notebook_gets_its_verdict_and_culprit(course: Path) -> None:
    backend = FakeBackend(PACKAGES, SCRIPTS)

    report = audit(course, backend)

    assert verdicts(report) == {
        "a_same.ipynb": "ok",
        "b_changed.ipynb": "changed",
        "c_broken.ipynb": "broken",
        "d_fine.ipynb": "ok",
    }
    broken = next(nb for nb in report.notebooks if nb.path == "c_broken.ipynb")
    assert broken.culprit is not None
    assert (broken.culprit.package, broken.culprit.to_version) == ("wobble", "2.0")
    # Every notebook in every env, and the one whose outputs differ once more in the baseline.
    expected = [(nb, env) for nb in NOTEBOOKS for env in PACKAGES]
    assert sorted(backend.executed) == sorted([*expected, ("b_changed.ipynb", "locked")])
    assert backend.stops >= 1  # kernels are always stopped at the end


def test_exit_codes_follow_the_verdicts(course: Path) -> None:
    config = settings.load(course, {"cache-dir": str(course.parent / "cache")})
    report = pipeline.run(config, backend=FakeBackend(PACKAGES, SCRIPTS))
    calm = pipeline.run(config, backend=FakeBackend(PACKAGES))
    only_changed = pipeline.run(
        config, backend=FakeBackend(PACKAGES, {k: v for k, v in SCRIPTS.items() if "b_" in k[0]})
    )

    assert pipeline.exit_code(report, config) == 1
    assert pipeline.exit_code(calm, config) == 0
    assert pipeline.exit_code(only_changed, config) == 1
    allowing = settings.load(
        course, {"cache-dir": str(course.parent / "cache"), "allow-changed": True}
    )
    assert pipeline.exit_code(only_changed, allowing) == 0


def test_an_env_that_cannot_be_built_breaks_its_notebooks(course: Path) -> None:
    backend = FakeBackend(PACKAGES, env_errors={"upcoming": "cannot resolve wobble>=9"})

    report = audit(course, backend)

    assert set(verdicts(report).values()) == {"broken"}
    run = report.notebooks[0].runs["upcoming"]
    assert (run.status, run.reason) == ("env-failed", "cannot resolve wobble>=9")
    assert ("a_same.ipynb", "upcoming") not in backend.executed


def test_a_setup_error_of_an_env_build_stops_the_audit(course: Path) -> None:
    class NoResolver(FakeBackend):
        def build(self, spec: Any, interpreter: Any, progress: Any) -> EnvInfo:
            raise EnvironmentBuildError("uv is not installed")

    with pytest.raises(EnvironmentBuildError, match="uv is not installed"):
        audit(course, NoResolver(PACKAGES))


def test_no_notebooks_is_a_config_error(tmp_path: Path) -> None:
    course = write_course(tmp_path, [])

    with pytest.raises(ConfigError, match="no notebooks"):
        audit(course, FakeBackend(PACKAGES))


# --- the boundary: nbguard's own failure costs one notebook, never the audit ---------------------


def test_an_exception_while_executing_one_notebook_is_that_notebooks_internal_error(
    course: Path,
) -> None:
    scripts = {**SCRIPTS, ("d_fine.ipynb", "upcoming"): RuntimeError("nbguard bug")}

    report = audit(course, FakeBackend(PACKAGES, scripts))

    assert verdicts(report) == {
        "a_same.ipynb": "ok",
        "b_changed.ipynb": "changed",
        "c_broken.ipynb": "broken",
        "d_fine.ipynb": "internal-error",
    }
    hit = next(nb for nb in report.notebooks if nb.path == "d_fine.ipynb")
    assert hit.internal is not None
    assert (hit.internal.stage, hit.internal.ename) == ("executing in upcoming", "RuntimeError")
    assert "nbguard bug" in hit.internal.traceback
    assert hit.runs["upcoming"].status == "internal-error"
    assert hit.runs["locked"].status == "ok"


def test_an_exception_while_comparing_one_notebook_is_that_notebooks_internal_error(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = compare.compare_runs

    def flaky(baseline: NotebookRun, other: NotebookRun, *rest: Any) -> Comparison:
        if baseline.notebook == "a_same.ipynb":
            raise KeyError("oops")
        return real(baseline, other, *rest)

    monkeypatch.setattr(compare, "compare_runs", flaky)

    report = audit(course, FakeBackend(PACKAGES, SCRIPTS))

    assert verdicts(report)["a_same.ipynb"] == "internal-error"
    assert verdicts(report)["c_broken.ipynb"] == "broken"
    hit = report.notebooks[0]
    assert hit.internal is not None and hit.internal.stage == "comparing"


# --- through the CLI: the report is written, the exit code tells ---------------------------------


def run_cli(
    course: Path, backend: FakeBackend, monkeypatch: pytest.MonkeyPatch, *flags: str
) -> tuple[int, dict[str, Any]]:
    monkeypatch.setattr(pipeline, "Machine", lambda options: backend)
    report = course.parent / "report.json"
    code = cli.main(
        [
            "run",
            str(course),
            "--cache-dir",
            str(course.parent / "cache"),
            "--report",
            str(report),
            *flags,
        ]
    )
    return code, json.loads(report.read_text())


def test_cli_exit_3_and_a_full_report_when_nbguard_fails_on_a_notebook(
    course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scripts = {**SCRIPTS, ("a_same.ipynb", "locked"): RuntimeError("nbguard bug")}
    before = snapshot(course)

    code, data = run_cli(course, FakeBackend(PACKAGES, scripts), monkeypatch)

    assert code == pipeline.EXIT_INTERNAL == 3
    assert {nb["path"]: nb["verdict"] for nb in data["notebooks"]} == {
        "a_same.ipynb": "internal-error",
        "b_changed.ipynb": "changed",
        "c_broken.ipynb": "broken",
        "d_fine.ipynb": "ok",
    }
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "internal-error" in out
    assert snapshot(course) == before


@pytest.mark.parametrize(
    ("scripts", "flags", "expected"),
    [
        ({}, (), 0),
        (SCRIPTS, (), 1),
        ({k: v for k, v in SCRIPTS.items() if "b_" in k[0]}, ("--allow-changed",), 0),
        (BOTH_FAIL, (), 0),
        (BOTH_FAIL, ("--strict",), 1),
    ],
)  # fmt: skip
def test_cli_exit_codes(
    course: Path,
    monkeypatch: pytest.MonkeyPatch,
    scripts: dict[tuple[str, str], Script],
    flags: tuple[str, ...],
    expected: int,
) -> None:
    code, _ = run_cli(course, FakeBackend(PACKAGES, scripts), monkeypatch, *flags)

    assert code == expected


def test_cli_ctrl_c_reports_what_finished_and_exits_130(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        signal.raise_signal(signal.SIGINT)  # as a user's Ctrl-C reaches the main thread
        time.sleep(1)  # a kernel still busy while the main thread handles it
        return printed(notebook.path, env.name, "same everywhere")

    backend = FakeBackend(PACKAGES, {("c_broken.ipynb", "upcoming"): interrupt})

    code, data = run_cli(course, backend, monkeypatch, "--jobs", "1")

    assert code == 130
    assert data["interrupted"] is True
    # One kernel at a time, in order: d_fine's upcoming run was still queued, never started.
    assert "d_fine.ipynb" not in {nb["path"] for nb in data["notebooks"]}
    assert ("d_fine.ipynb", "upcoming") not in backend.executed
    assert backend.stops >= 1


def test_nbguard_report_redraws_the_terminal_table_from_the_json(
    course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    run_cli(course, FakeBackend(PACKAGES, SCRIPTS), monkeypatch)
    drawn = capsys.readouterr().out

    assert cli.main(["report", str(course.parent / "report.json")]) == 0

    redrawn = capsys.readouterr().out
    assert "c_broken.ipynb" in redrawn and "AttributeError" in redrawn
    assert redrawn in drawn  # the run's table, after its progress lines


def test_a_baseline_env_that_cannot_be_built_is_a_setup_error_not_fixed_notebooks(
    course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = FakeBackend(
        PACKAGES, env_errors={"locked": "error: hash mismatch for wobble==1.0\n  expected …"}
    )
    monkeypatch.setattr(pipeline, "Machine", lambda options: backend)

    code = cli.main(["run", str(course), "--cache-dir", str(course.parent / "cache")])

    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "baseline env 'locked' cannot be built" in err[0]
    assert "hash mismatch for wobble==1.0 (+1 more lines)" in err[0]


def test_kernels_without_a_sandbox_are_said_once(course: Path) -> None:
    def unsandboxed(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        run = printed(notebook.path, env.name, "same everywhere")
        return dataclasses.replace(run, isolation="none: namespaces not allowed here (EPERM)")

    scripts: dict[tuple[str, str], Script] = {
        (nb, env): unsandboxed for nb in NOTEBOOKS for env in PACKAGES
    }
    notes: list[str] = []

    class Notes(pipeline.Silent):
        def note(self, text: str) -> None:
            notes.append(text)

    config = settings.load(course, {"cache-dir": str(course.parent / "cache")})
    report = pipeline.run(config, Notes(), backend=FakeBackend(PACKAGES, scripts))

    assert notes == ["kernels run without a sandbox: namespaces not allowed here (EPERM)"]
    assert {nb.runs["upcoming"].isolation for nb in report.notebooks} == {
        "none: namespaces not allowed here (EPERM)"
    }


def test_nothing_a_notebook_printed_steers_the_terminal(course: Path) -> None:
    hostile = "\x1bc\x1b]0;pwned\x07\x1b[2Jgone\x08\x08 \u202eevil"
    scripts: dict[tuple[str, str], Script] = {
        ("c_broken.ipynb", "upcoming"): raised("c_broken.ipynb", "upcoming", "ValueError", hostile),
        ("b_changed.ipynb", "upcoming"): printed("b_changed.ipynb", "upcoming", hostile),
    }
    config = settings.load(course, {"cache-dir": str(course.parent / "cache")})
    data = json_report.to_json(pipeline.run(config, backend=FakeBackend(PACKAGES, scripts)))
    out = io.StringIO()

    terminal.render(data, Console(file=out, width=200, force_terminal=True), "r.json")

    shown = out.getvalue()
    assert "ValueError" in shown and "gone" in shown
    assert "pwned" not in shown  # the title-setting sequence is gone, not shown
    for control in ("\x07", "\x08", "\u202e", "\x1bc", "\x1b]", "\x1b[2J"):
        assert control not in shown
    # Only rich's own colours remain: every escape left is a colour (SGR) sequence.
    assert all(seq.endswith("m") for seq in re.findall(r"\x1b\[[0-9;]*[A-Za-z]", shown))
