"""Fast tier: the JSON report contract (nbguard-report/2) from an in-memory Report, and the
reading of reports written as nbguard-report/1."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from nbguard import __version__
from nbguard.errors import ConfigError
from nbguard.model import (
    VERDICTS,
    CellError,
    Change,
    Comparison,
    Culprit,
    EnvInfo,
    InternalError,
    NotebookReport,
    NotebookRun,
    Report,
    Tolerance,
    WarningRecord,
)
from nbguard.report import json_report, markdown

HW01 = "homework/hw01_averages.ipynb"
DEPRECATION = WarningRecord(
    3,
    "DeprecationWarning",
    "old_mean is deprecated; use wobble.mean instead",
    "nbguard-demo-wobble",
)
CULPRIT = Culprit(
    "nbguard-demo-wobble", "1.0", "2.0", "inferred", "AttributeError names module wobble"
)


def broken_notebook() -> NotebookReport:
    runs = {
        "locked": NotebookRun(HW01, "locked", "ok", 1.1234, warnings=(DEPRECATION,)),
        "upcoming": NotebookRun(
            HW01,
            "upcoming",
            "error",
            0.9876,
            error=CellError(
                3,
                "AttributeError",
                "module 'wobble' has no attribute 'old_mean'",
                traceback=("frames that stay out of the report",),
            ),
        ),
    }
    change = Change("upcoming", 3, "error", "2.0", "AttributeError: module 'wobble' …")
    comparison = Comparison(HW01, "locked", "upcoming", "broken", (change,), CULPRIT)
    return NotebookReport(HW01, "broken", runs, (comparison,))


def skipped_notebook() -> NotebookReport:
    path = "labs/r_intro.ipynb"
    reason = "non-Python kernel 'ir' (R)"
    runs = {
        env: NotebookRun(path, env, "skipped", 0.0, reason=reason) for env in ("locked", "upcoming")
    }
    return NotebookReport(path, "skipped", runs, skip_reason=reason)


@pytest.fixture
def report() -> Report:
    envs = {
        "locked": EnvInfo(
            "locked",
            "3.11.7",
            {"numpy": "1.26.4", "nbguard-demo-wobble": "1.0"},
            "aa11",
            reused=True,
        ),
        "upcoming": EnvInfo(
            "upcoming",
            "3.11.7",
            {"numpy": "1.26.4", "nbguard-demo-wobble": "2.0"},
            "bb22",
            build_s=10.71,
        ),
    }
    return Report(
        course="/courses/phys210",
        baseline="locked",
        envs=envs,
        notebooks=(broken_notebook(), skipped_notebook()),
        created="2024-08-01T09:00:00+00:00",
        duration_s=18.5,
        settings={"jobs": 2, "notebooks": ("**/*.ipynb",), "cache-dir": "/c"},
    )


@pytest.fixture
def data(report: Report) -> dict[str, Any]:
    """The report as a reader of the file gets it: through JSON text."""
    loaded: dict[str, Any] = json.loads(json.dumps(json_report.to_json(report)))
    return loaded


def test_top_level_contract(data: dict[str, Any]) -> None:
    assert data["schema"] == "nbguard-report/2"
    assert data["nbguard_version"] == __version__
    assert data["created"] == "2024-08-01T09:00:00+00:00"
    assert data["baseline"] == "locked"
    assert data["interrupted"] is False
    assert data["settings"]["notebooks"] == ["**/*.ipynb"]


def test_envs_show_python_packages_and_fingerprint(data: dict[str, Any]) -> None:
    assert data["envs"]["upcoming"] == {
        "python": "3.11.7",
        "packages": {"nbguard-demo-wobble": "2.0", "numpy": "1.26.4"},
        "requirements": [],
        "fingerprint": "bb22",
        "reused": False,
        "build_s": 10.71,
        "error": None,
    }
    assert list(data["envs"]["locked"]["packages"]) == ["nbguard-demo-wobble", "numpy"]


def test_summary_counts_every_verdict_even_zero(data: dict[str, Any]) -> None:
    assert data["summary"] == dict.fromkeys(VERDICTS, 0) | {"broken": 1, "skipped": 1}
    assert list(data["summary"]) == list(VERDICTS)


def test_a_broken_notebook_carries_runs_changes_and_culprit(data: dict[str, Any]) -> None:
    notebook = data["notebooks"][0]

    assert notebook["path"] == HW01
    assert notebook["verdict"] == "broken"
    assert notebook["verdicts"] == {"upcoming": "broken"}
    assert notebook["runs"]["locked"] == {
        "status": "ok",
        "duration_s": 1.123,
        "error": None,
        "later_errors": [],
        "reason": None,
        "warnings": [
            {
                "cell": 3,
                "category": "DeprecationWarning",
                "message": "old_mean is deprecated; use wobble.mean instead",
                "package": "nbguard-demo-wobble",
                "origin": "course",
            }
        ],
        "internal_error": None,
        "isolation": "",  # a run made by hand: no kernel, no sandbox
        "cached": False,  # executed, not taken from the execution cache
        "reused_from": None,  # executed in this env, not another env's run
    }
    upcoming = notebook["runs"]["upcoming"]
    assert (upcoming["status"], upcoming["duration_s"], upcoming["warnings"]) == (
        "error",
        0.988,
        [],
    )
    assert upcoming["error"] == {
        "cell": 3,
        "ename": "AttributeError",
        "evalue": "module 'wobble' has no attribute 'old_mean'",
    }
    assert notebook["changes"] == [
        {
            "env": "upcoming",
            "cell": 3,
            "kind": "error",
            "summary": None,
            "before": "2.0",
            "after": "AttributeError: module 'wobble' …",
            "applied": [],
            "tolerance": None,
        }
    ]
    assert notebook["culprit"] == {
        "package": "nbguard-demo-wobble",
        "from": "1.0",
        "to": "2.0",
        "evidence": "inferred",
        "reason": "AttributeError names module wobble",
    }


def test_a_change_carries_both_texts_its_summary_and_tolerance() -> None:
    change = Change(
        "upcoming",
        2,
        "value",
        "a  0.5\nb  1.0",
        "a  0.53\nb  1.0",
        ("rel_tol=0.001", "abs_tol=0"),
        summary="0.5 → 0.53 (rel 6%), line 1",
        tolerance=Tolerance(rel=1e-3, abs=0.0),
    )

    assert change.to_json() == {
        "env": "upcoming",
        "cell": 2,
        "kind": "value",
        "summary": "0.5 → 0.53 (rel 6%), line 1",
        "before": "a  0.5\nb  1.0",
        "after": "a  0.53\nb  1.0",
        "applied": ["rel_tol=0.001", "abs_tol=0"],
        "tolerance": {"rel": 0.001, "abs": 0.0},
    }


def test_nbguards_own_failure_is_carried_by_the_notebook_and_its_run(report: Report) -> None:
    boom = InternalError("comparing", "RuntimeError", "boom", "Traceback …\nRuntimeError: boom")
    path = "labs/lab04.ipynb"
    runs = {
        "locked": NotebookRun(path, "locked", "ok", 1.0),
        "upcoming": NotebookRun(path, "upcoming", "internal-error", 0.5, internal=boom),
    }
    failed = NotebookReport(path, "internal-error", runs, internal=boom)

    data = json_report.to_json(replace(report, notebooks=(failed,)))

    (notebook,) = data["notebooks"]
    expected = {
        "stage": "comparing",
        "ename": "RuntimeError",
        "message": "boom",
        "traceback": "Traceback …\nRuntimeError: boom",
    }
    assert notebook["internal_error"] == expected
    assert notebook["runs"]["upcoming"]["internal_error"] == expected
    assert notebook["runs"]["locked"]["internal_error"] is None
    assert data["summary"]["internal-error"] == 1


def test_a_skipped_notebook_says_why_and_has_no_culprit(data: dict[str, Any]) -> None:
    notebook = data["notebooks"][1]

    assert notebook["verdict"] == "skipped"
    assert notebook["skip_reason"] == "non-Python kernel 'ir' (R)"
    assert notebook["runs"]["upcoming"]["status"] == "skipped"
    assert (notebook["changes"], notebook["culprit"]) == ([], None)


# --- writing the file ---------------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[int]:
    mask = os.umask(0o022)
    try:
        yield 0o022
    finally:
        os.umask(mask)


def test_write_produces_the_report_as_valid_json_and_no_temp_files(
    report: Report, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "nbguard-report.json"

    json_report.write(report, path)

    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(
        json.dumps(json_report.to_json(report))
    )
    assert [p.name for p in path.parent.iterdir()] == ["nbguard-report.json"]


def test_write_replaces_an_older_report(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "nbguard-report.json"
    path.write_text('{"schema": "nbguard-report/2", "notebooks": []}', encoding="utf-8")

    json_report.write(report, path)

    assert len(json.loads(path.read_text(encoding="utf-8"))["notebooks"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["nbguard-report.json"]


def test_a_report_that_cannot_be_written_leaves_the_old_one_whole(
    report: Report, tmp_path: Path
) -> None:
    path = tmp_path / "nbguard-report.json"
    path.write_text('{"old": true}\n', encoding="utf-8")
    unserializable = replace(report, settings={"cache-dir": Path("/c")})

    with pytest.raises(TypeError):
        json_report.write(unserializable, path)

    assert path.read_text(encoding="utf-8") == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["nbguard-report.json"]


def test_the_report_gets_the_usual_file_permissions(
    report: Report, tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "nbguard-report.json"

    json_report.write(report, path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# --- reading ------------------------------------------------------------------------------------


def test_a_report_reads_back_as_written(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "nbguard-report.json"
    json_report.write(report, path)

    assert json_report.read(path) == json.loads(json.dumps(json_report.to_json(report)))


# A multi-line change as nbguard-report/1 wrote it: an excerpt of the old text in `before`, a
# summary and a unified diff in `after`.
V1_TABLE_CHANGE = {
    "env": "upcoming",
    "cell": 1,
    "kind": "value",
    "before": (
        "0  intercept  1.50  4.440892e-16\n"
        "1         x1 -0.25 -2.220446e-16\n"
        "2         x2  2.00  0.000000e+00"
    ),
    "after": (
        "-0.25 → -0.31 (rel 24%), line 3\n"
        "@@ -2,3 +2,3 @@\n"
        " 0  intercept  1.50  4.440892e-16\n"
        "-1         x1 -0.25 -2.220446e-16\n"
        "+1         x1 -0.31    0.0\n"
        " 2         x2  2.00  0.000000e+00"
    ),
    "applied": ["whitespace", "rel_tol=1e-06", "abs_tol=1e-12"],
}


def _v1_report(*changes: dict[str, Any]) -> dict[str, Any]:
    ok = {"status": "ok", "duration_s": 1.0, "error": None, "later_errors": [], "warnings": []}
    notebook = {
        "path": "lectures/07_fit.ipynb",
        "verdict": "changed",
        "verdicts": {"upcoming": "changed"},
        "runs": {"locked": ok, "upcoming": ok},
        "changes": list(changes),
        "culprit": None,
    }
    envs = {name: {"python": "3.11.7", "packages": {}} for name in ("locked", "upcoming")}
    return {
        "schema": "nbguard-report/1",
        "baseline": "locked",
        "envs": envs,
        "summary": {"changed": 1},
        "notebooks": [notebook],
    }


def test_a_version_1_report_is_read_in_the_current_shape(tmp_path: Path) -> None:
    image = {
        "env": "upcoming",
        "cell": 5,
        "kind": "image",
        "before": "image/png, 120 bytes, sha256 aa",
        "after": "image/png, 121 bytes, sha256 bb\n3.2% of drawn pixels differ",
        "applied": ["image_threshold=0.01"],
    }
    short = {
        "env": "upcoming",
        "cell": 3,
        "kind": "repr",
        "before": "3.0",
        "after": "np.float64(3.0)",
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(_v1_report(V1_TABLE_CHANGE, image, short)), encoding="utf-8")

    data = json_report.read(path)

    assert (data["schema"], data["upgraded_from"]) == ("nbguard-report/2", "nbguard-report/1")
    table, picture, plain = data["notebooks"][0]["changes"]
    assert table["summary"] == "-0.25 → -0.31 (rel 24%), line 3"
    # Both texts rebuilt from the diff: the lines around the change, each side's own row.
    assert table["before"].split("\n")[1] == "1         x1 -0.25 -2.220446e-16"
    assert table["after"].split("\n") == [
        "0  intercept  1.50  4.440892e-16",
        "1         x1 -0.31    0.0",
        "2         x2  2.00  0.000000e+00",
    ]
    assert table["tolerance"] is None
    assert (picture["after"], picture["summary"]) == (
        "image/png, 121 bytes, sha256 bb",
        "3.2% of drawn pixels differ",
    )
    assert (plain["before"], plain["after"], plain["summary"]) == ("3.0", "np.float64(3.0)", None)


def test_a_version_1_report_re_renders_with_one_diff(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps(_v1_report(V1_TABLE_CHANGE)), encoding="utf-8")

    md = markdown.render(json_report.read(path))

    block = md[md.index("```diff") :]
    block = block[: block.index("\n```\n")]
    assert block.split("\n")[3:] == [
        "@@ -1,3 +1,3 @@",
        " 0  intercept  1.50  4.440892e-16",
        "-1         x1 -0.25 -2.220446e-16",
        "+1         x1 -0.31    0.0",
        " 2         x2  2.00  0.000000e+00",
    ]
    assert "value in upcoming: -0.25 → -0.31 (rel 24%), line 3" in md


def test_a_report_of_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text('{"schema": "nbguard-report/3", "notebooks": []}', encoding="utf-8")

    with pytest.raises(ConfigError, match="schema nbguard-report/3; this nbguard reads"):
        json_report.read(path)
