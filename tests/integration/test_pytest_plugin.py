"""Integration tier: `pytest --nbguard` on the demo course, in real venvs built offline — items
fail, pass and skip by the verdicts `nbguard run` gives (fixtures/demo-course/EXPECTED.json),
with the culprit and the diff in the failure text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.courses import DEMO_COURSE, snapshot
from tests.support.wheels import kernel_wheelhouse

pytest_plugins = ["pytester"]

EXPECTED: dict[str, Any] = json.loads((DEMO_COURSE / "EXPECTED.json").read_text())
# One notebook of each kind an item can end as, to keep the tier's time: broken and changed
# fail, fixed passes, an R notebook is skipped.
PICKED = {
    "homework/hw01_averages.ipynb": "failed",
    "lectures/05_damping.ipynb": "failed",
    "lectures/03_robust_statistics.ipynb": "passed",
    "labs/lab02_plots_in_r.ipynb": "skipped",
}


def test_items_follow_nbguards_verdicts_with_culprit_and_diff(
    pytester: pytest.Pytester, fixture_wheels: Path, env_cache: Path
) -> None:
    course = pytester.path / "demo-course"
    shutil.copytree(DEMO_COURSE, course)
    shutil.copytree(fixture_wheels, pytester.path / "wheels")
    before = snapshot(course)
    report = pytester.path / "report.json"
    names = " or ".join(Path(path).stem for path in PICKED)

    # Values joined to their options: pytest takes a lone path argument for a place to
    # collect from, and for its rootdir.
    result = pytester.runpytest(
        "--nbguard",
        "demo-course",
        "-k",
        names,
        "--nbguard-no-index",
        f"--nbguard-find-links={kernel_wheelhouse()}",
        f"--nbguard-cache-dir={env_cache}",
        f"--nbguard-report={report}",
        "-p",
        "no:cacheprovider",
        "-rA",
    )

    result.assert_outcomes(failed=2, passed=1, skipped=1, deselected=6)
    for path, outcome in PICKED.items():
        shown = (
            "SKIPPED [[]1] {}: *" if outcome == "skipped" else f"{outcome.upper()} {{}}::nbguard*"
        )
        result.stdout.fnmatch_lines([shown.format(f"demo-course/{path}")])
    result.stdout.fnmatch_lines(
        [
            "homework/hw01_averages.ipynb: broken",
            "  upcoming: cell 3: AttributeError: module 'wobble' has no attribute 'old_mean'",
            "*",
            "  culprit: nbguard-demo-wobble 1.0 → 2.0 (inferred)*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "lectures/05_damping.ipynb: changed",
            "*",
            "cell 4 (upcoming): repr: 12.0 → wobble.Scalar(12.0)",
            "--- locked",
            "+++ upcoming",
            "@@ -1 +1 @@",
            "-12.0",
            "+wobble.Scalar(12.0)",
        ]
    )
    data = json.loads(report.read_text())
    assert {nb["path"]: nb["verdict"] for nb in data["notebooks"]} == {
        path: EXPECTED["notebooks"][path] for path in PICKED
    }
    assert snapshot(course) == before
