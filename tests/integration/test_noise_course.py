"""Integration tier: the noise course (fixtures/noise-course) in real envs built offline —
every kind of run-to-run noise is listed as volatile or cosmetic, never as a change, while the
real change next to it still is; only the notebooks whose outputs differed ran twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from nbguard import cli
from tests.support.courses import FIXTURES
from tests.support.wheels import offline_args

COURSE = FIXTURES / "noise-course"
EXPECTED: dict[str, Any] = json.loads((COURSE / "EXPECTED.json").read_text())["notebooks"]


@pytest.fixture(scope="module")
def noise_run(
    tmp_path_factory: pytest.TempPathFactory, fixture_wheels: Path, env_cache: Path
) -> tuple[int, dict[str, Any]]:
    root = tmp_path_factory.mktemp("noise")
    course = root / "noise-course"
    shutil.copytree(COURSE, course)
    shutil.copytree(fixture_wheels, root / "wheels")
    report = root / "report.json"
    args = ["run", str(course), *offline_args(env_cache), "--report", str(report), "-j", "4"]
    code = cli.main(args)
    return code, json.loads(report.read_text())


def test_noise_is_never_a_change_and_the_real_change_beside_it_is(
    noise_run: tuple[int, dict[str, Any]],
) -> None:
    code, report = noise_run
    found = {
        nb["path"]: {
            "verdict": nb["verdict"],
            "changed_cells": sorted({c["cell"] for c in nb["changes"]}),
            "noise_cells": sorted({n["cell"] for n in nb["notes"]}),
        }
        for nb in report["notebooks"]
    }
    assert found == EXPECTED
    assert code == 1  # the real changes fail the run


def test_only_notebooks_whose_outputs_differed_ran_again_in_the_baseline(
    noise_run: tuple[int, dict[str, Any]],
) -> None:
    _, report = noise_run
    again = {nb["path"]: nb["volatile_rerun"] for nb in report["notebooks"]}
    # The figure's only difference is its size, found without a second run.
    assert again["lectures/04_figure.ipynb"] is None
    ran_again = {path for path, rerun in again.items() if rerun}
    volatile = {
        nb["path"] for nb in report["notebooks"] for n in nb["notes"] if n["kind"] == "volatile"
    }
    assert volatile <= ran_again
    assert all(
        rerun["env"] == "locked" and rerun["status"] == "ok" for rerun in again.values() if rerun
    )
