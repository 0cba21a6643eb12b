"""Integration tier: `nbguard fix` on the demo course's broken homework, in real envs built
offline: wobble's own advice ("use wobble.mean instead") verified in both envs, a patch
`git apply` takes, and --write changing the cell source and nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nbguard import cli
from tests.support.courses import snapshot
from tests.support.wheels import offline_args

BROKEN = "homework/hw01_averages.ipynb"


def _fix(course: Path, cache: Path, root: Path, *extra: str) -> tuple[int, dict[str, object]]:
    report = root / "report.json"
    code = cli.main(
        ["fix", BROKEN, "--course", str(course), *offline_args(cache), "--report", str(report),
         "--patch", str(root / "fixes.patch"), *extra]
    )  # fmt: skip
    return code, json.loads(report.read_text())


@pytest.mark.skipif(shutil.which("git") is None, reason="git applies the patch")
def test_the_demo_break_gets_a_verified_fix_a_patch_and_write(
    demo_course: Path, env_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The patch must apply to the course as it was: a pristine copy in git to apply it to.
    pristine = tmp_path / "pristine"
    shutil.copytree(demo_course, pristine)
    subprocess.run(["git", "init", "-q"], cwd=pristine, check=True)
    before = snapshot(demo_course)
    original = (demo_course / BROKEN).read_text(encoding="utf-8")
    monkeypatch.chdir(demo_course)  # the notebook is named relative to the cwd

    code, data = _fix(demo_course, env_cache, tmp_path, "--write")

    assert code == 1  # the verdicts are those of the course as it was audited
    [nb] = data["notebooks"]  # type: ignore[misc]
    fix = nb["fix"]
    assert fix["sources"] == ["library"]
    assert fix["runs_in"] == ["upcoming", "locked"]
    assert fix["after"] == "ok"
    diff = "-mean_period = wobble.old_mean(periods)\n+mean_period = wobble.mean(periods)"
    assert diff in fix["diff"]
    patch = str(tmp_path / "fixes.patch")
    subprocess.run(["git", "apply", "--check", patch], cwd=pristine, check=True)

    assert data["fixes"]["written"] == [f"wrote {BROKEN}"]  # type: ignore[index]
    after = snapshot(demo_course)
    assert {path for path in after if after[path] != before.get(path)} == {BROKEN}
    old = original.splitlines()
    new = (demo_course / BROKEN).read_text(encoding="utf-8").splitlines()
    assert [(a, b) for a, b in zip(old, new, strict=True) if a != b] == [
        (
            '    "mean_period = wobble.old_mean(periods)\\n",',
            '    "mean_period = wobble.mean(periods)\\n",',
        )
    ]
