"""Integration tier: on real venvs that differ in one package (wobble 1.0 → 2.0), a notebook
that never imports it runs once and its locked run stands for upcoming's; one that imports
it, one that starts a process, and every notebook under --no-cache run in both envs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nbguard import cli
from tests.support.courses import make_course
from tests.support.wheels import offline_args

NOTEBOOKS = {
    "plain.ipynb": ["import json, statistics", "print(statistics.mean([1, 2, 3]))"],
    "wobbly.ipynb": ["import wobble", "print(wobble.mean([1, 2, 3]))"],
    # An optional import counts whether or not it succeeds: here wobble is found in both
    # envs, in different versions.
    "optional.ipynb": [
        "try:\n    import wobble\nexcept ImportError:\n    wobble = None",
        "print(wobble is None)",
    ],
    "spawns.ipynb": ["import subprocess, sys", "subprocess.run([sys.executable, '-c', '1'])"],
}


def _audit(tmp_path: Path, fixture_wheels: Path, env_cache: Path, *extra: str) -> dict[str, Any]:
    course = make_course(tmp_path, NOTEBOOKS, fixture_wheels)
    report = tmp_path / "report.json"
    args = ["run", str(course), *offline_args(env_cache), "--report", str(report), *extra]
    assert cli.main(args) in (0, 1)
    return json.loads(report.read_text())


def _reused(report: dict[str, Any]) -> dict[str, str | None]:
    return {nb["path"]: nb["runs"]["upcoming"]["reused_from"] for nb in report["notebooks"]}


def test_only_a_notebook_that_used_nothing_that_moved_takes_the_locked_run(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    report = _audit(tmp_path, fixture_wheels, env_cache)

    assert _reused(report) == {
        "optional.ipynb": None,
        "plain.ipynb": "locked",
        "spawns.ipynb": None,
        "wobbly.ipynb": None,
    }
    verdicts = {nb["path"]: nb["verdict"] for nb in report["notebooks"]}
    assert verdicts["plain.ipynb"] == "ok"
    runs = {nb["path"]: nb["runs"] for nb in report["notebooks"]}
    # The stand-in is the locked run itself: its outputs, its time.
    assert (
        runs["plain.ipynb"]["upcoming"]["duration_s"] == runs["plain.ipynb"]["locked"]["duration_s"]
    )


def test_no_cache_executes_every_notebook_in_both_envs(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    report = _audit(tmp_path, fixture_wheels, env_cache, "--no-cache")

    assert set(_reused(report).values()) == {None}
