"""Integration tier: `nbguard run` on the demo course builds real venvs from local wheels
(offline) and gives every verdict a user expects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbguard import cli
from tests.support.courses import DEMO_COURSE, snapshot
from tests.support.wheels import offline_args

EXPECTED: dict[str, Any] = json.loads((DEMO_COURSE / "EXPECTED.json").read_text())


def _run(course: Path, cache: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    report = tmp_path / "report.json"
    code = cli.main(["run", str(course), *offline_args(cache), "--report", str(report), *extra])
    return code, json.loads(report.read_text())


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory, fixture_wheels: Path, env_cache: Path
) -> tuple[int, dict[str, Any], dict[str, str], dict[str, str], Path]:
    """One audit of a fresh copy of the demo course, shared by the tests that read it."""
    import shutil

    root = tmp_path_factory.mktemp("demo")
    course = root / "demo-course"
    shutil.copytree(DEMO_COURSE, course)
    shutil.copytree(fixture_wheels, root / "wheels")
    before = snapshot(course)
    code, report = _run(course, env_cache, root, "--jobs", "4")
    return code, report, before, snapshot(course), course


def test_every_notebook_gets_its_expected_verdict(demo_run: Any) -> None:
    code, report, *_ = demo_run
    verdicts = {nb["path"]: nb["verdict"] for nb in report["notebooks"]}
    assert verdicts == EXPECTED["notebooks"]
    # A broken notebook fails the run.
    assert code == 1


def test_report_follows_the_json_contract(demo_run: Any) -> None:
    _, report, *_ = demo_run
    assert report["schema"] == "nbguard-report/2"
    assert {"nbguard_version", "created", "envs", "notebooks", "summary"} <= set(report)
    assert report["envs"]["locked"]["packages"]["nbguard-demo-wobble"] == "1.0"
    assert report["envs"]["upcoming"]["packages"]["nbguard-demo-wobble"] == "2.0"
    # ipykernel was added to both envs without moving the course's pins.
    assert "ipykernel" in report["envs"]["locked"]["packages"]
    assert report["summary"]["broken"] == 1
    assert sum(report["summary"].values()) == len(EXPECTED["notebooks"])
    for nb in report["notebooks"]:
        assert set(nb["runs"]) == {"locked", "upcoming"}
        for run in nb["runs"].values():
            assert {"status", "duration_s", "error", "warnings"} <= set(run)


def test_broken_notebook_names_the_failing_cell_and_the_upgrade(demo_run: Any) -> None:
    _, report, *_ = demo_run
    for path, per_env in EXPECTED["errors"].items():
        nb = next(nb for nb in report["notebooks"] if nb["path"] == path)
        for env, error in per_env.items():
            got = nb["runs"][env]["error"]
            assert (got["cell"], got["ename"]) == (error["cell"], error["ename"]), path
    broken = next(nb for nb in report["notebooks"] if nb["verdict"] == "broken")
    assert broken["culprit"]["package"] == "nbguard-demo-wobble"
    assert (broken["culprit"]["from"], broken["culprit"]["to"]) == ("1.0", "2.0")
    assert broken["culprit"]["evidence"] == "inferred"


def test_broken_notebook_shows_the_early_warning_and_the_suggested_fix(demo_run: Any) -> None:
    _, report, *_ = demo_run
    broken = next(nb for nb in report["notebooks"] if nb["verdict"] == "broken")
    # The locked run already warned about the API that broke: the warning the course ignored.
    [warned] = broken["foreshadowing"]
    assert (warned["cell"], warned["category"]) == (3, "DeprecationWarning")
    assert "old_mean" in warned["message"]
    shown = [(h["cell"], h["hint"], h["source"]) for h in broken["hints"]]
    assert (3, "use wobble.mean instead", "DeprecationWarning (nbguard-demo-wobble)") in shown


def test_warning_records_carry_category_package_and_cell(demo_run: Any) -> None:
    _, report, *_ = demo_run
    for nb in report["notebooks"]:
        got = sorted(
            (env, w["cell"], w["category"], w["package"])
            for env, run in nb["runs"].items()
            for w in run["warnings"]
        )
        wanted = sorted(
            (w["env"], w["cell"], w["category"], w["package"])
            for w in EXPECTED["warnings"].get(nb["path"], [])
        )
        assert got == wanted, nb["path"]


def test_changed_notebook_shows_the_changed_cell(demo_run: Any) -> None:
    _, report, *_ = demo_run
    for path, cells in EXPECTED["changes"].items():
        nb = next(nb for nb in report["notebooks"] if nb["path"] == path)
        assert sorted({c["cell"] for c in nb["changes"]}) == cells


def test_course_tree_is_byte_identical_afterwards(demo_run: Any) -> None:
    _, _, before, after, _ = demo_run
    assert after == before


def test_second_run_reuses_both_envs(demo_run: Any, env_cache: Path, tmp_path: Path) -> None:
    *_, course = demo_run
    envs_before = sorted(p.name for p in (env_cache / "envs").iterdir())
    code, report = _run(course, env_cache, tmp_path)
    assert code == 1
    assert all(env["reused"] for env in report["envs"].values())
    assert sorted(p.name for p in (env_cache / "envs").iterdir()) == envs_before
    assert {nb["path"]: nb["verdict"] for nb in report["notebooks"]} == EXPECTED["notebooks"]


def test_unresolvable_upcoming_env_breaks_every_notebook_with_the_resolver_message(
    demo_course: Path, env_cache: Path, tmp_path: Path
) -> None:
    code, report = _run(
        demo_course, env_cache, tmp_path, "--env-pins", "upcoming=nbguard-demo-wobble>=9"
    )
    assert code == 1
    assert "nbguard-demo-wobble" in report["envs"]["upcoming"]["error"]
    for nb in report["notebooks"]:
        if nb["verdict"] == "skipped":
            continue
        assert nb["runs"]["upcoming"]["status"] == "env-failed"
        assert "nbguard-demo-wobble" in nb["runs"]["upcoming"]["reason"]
        assert nb["verdict"] in {"broken", "already-broken"}


def test_blame_confirms_the_culprit_of_the_broken_notebook(
    demo_run: Any, env_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    *_, course = demo_run
    monkeypatch.chdir(course)
    report_path = tmp_path / "blame.json"
    args = ["blame", "homework/hw01_averages.ipynb", *offline_args(env_cache)]
    assert cli.main([*args, "--report", str(report_path)]) == 1
    report = json.loads(report_path.read_text())
    [notebook] = report["notebooks"]
    assert notebook["path"] == "homework/hw01_averages.ipynb"
    assert notebook["culprit"]["package"] == "nbguard-demo-wobble"
    assert (notebook["culprit"]["from"], notebook["culprit"]["to"]) == ("1.0", "2.0")
    assert notebook["culprit"]["evidence"] == "confirmed"
    assert report["blame"]["notebooks"] == 1
    assert report["blame"]["steps"]["homework/hw01_averages.ipynb"]


def test_nightly_mode_fails_only_on_new_breakage(
    demo_run: Any, env_cache: Path, tmp_path: Path
) -> None:
    *_, course = demo_run
    first = tmp_path / "last-night.json"
    assert _run(course, env_cache, tmp_path)[0] == 1
    (tmp_path / "report.json").rename(first)
    # Nothing new since last night: the known breakage does not fail the nightly job.
    code, report = _run(course, env_cache, tmp_path, "--since-report", str(first))
    assert code == 0
    assert report["since"]["new_broken"] == []
    assert report["since"]["new_warnings"] == []
    # Had last night been all green, tonight's broken notebook is news.
    earlier = json.loads(first.read_text())
    for nb in earlier["notebooks"]:
        nb["verdict"] = "ok"
    first.write_text(json.dumps(earlier))
    code, report = _run(course, env_cache, tmp_path, "--since-report", str(first))
    assert code == 1
    assert [item["path"] for item in report["since"]["new_broken"]] == [
        "homework/hw01_averages.ipynb"
    ]


def test_report_rerenders_every_format_from_the_json_alone(
    demo_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report, *_ = demo_run
    source = tmp_path / "report.json"
    source.write_text(json.dumps(report))
    html, markdown, junit = tmp_path / "a.html", tmp_path / "s.md", tmp_path / "j.xml"
    args = ["report", str(source), "--html", str(html), "--markdown", str(markdown)]
    assert cli.main([*args, "--junit", str(junit)]) == 0
    assert "homework/hw01_averages.ipynb" in html.read_text()
    assert "homework/hw01_averages.ipynb" in markdown.read_text()
    assert "hw01_averages" in junit.read_text()
    capsys.readouterr()
    (tmp_path / "bad.json").write_text("{")
    assert cli.main(["report", str(tmp_path / "bad.json"), "--html", str(html)]) == 2
    assert "not JSON" in capsys.readouterr().err
