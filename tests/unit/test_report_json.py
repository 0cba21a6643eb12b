"""Fast tier: the JSON report contract (nbguard-report/1) from an in-memory Report."""

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
from nbguard.model import (
    VERDICTS,
    CellError,
    Change,
    Comparison,
    Culprit,
    EnvInfo,
    NotebookReport,
    NotebookRun,
    Report,
    WarningRecord,
)
from nbguard.report import json_report

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
    assert data["schema"] == "nbguard-report/1"
    assert data["nbguard_version"] == __version__
    assert data["created"] == "2024-08-01T09:00:00+00:00"
    assert data["baseline"] == "locked"
    assert data["interrupted"] is False
    assert data["settings"]["notebooks"] == ["**/*.ipynb"]


def test_envs_show_python_packages_and_fingerprint(data: dict[str, Any]) -> None:
    assert data["envs"]["upcoming"] == {
        "python": "3.11.7",
        "packages": {"nbguard-demo-wobble": "2.0", "numpy": "1.26.4"},
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
            }
        ],
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
            "before": "2.0",
            "after": "AttributeError: module 'wobble' …",
            "applied": [],
        }
    ]
    assert notebook["culprit"] == {
        "package": "nbguard-demo-wobble",
        "from": "1.0",
        "to": "2.0",
        "evidence": "inferred",
        "reason": "AttributeError names module wobble",
    }


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
    path.write_text('{"schema": "nbguard-report/1", "notebooks": []}', encoding="utf-8")

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
