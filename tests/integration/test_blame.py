"""Integration tier: confirming a notebook's culprit by rebuilding envs, on small courses
built from the stories in fixtures/blame-packages (offline, local wheels)."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard import blame, discover, envs, pipeline, runspec, settings
from nbguard.envs import interpreters
from nbguard.errors import InterpreterNotFound
from nbguard.model import Report
from nbguard.runner import Machine, Runner
from nbguard.settings import Config
from tests.support.courses import FIXTURES
from tests.support.wheels import build_wheels_module, kernel_wheelhouse

GADGET = "nbguard-demo-gadget"
WOBBLE = "nbguard-demo-wobble"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wobble's wheels and the blame stories' (gadget, left/right, gizmo) in one folder."""
    dest = tmp_path_factory.mktemp("blame-wheels")
    build = build_wheels_module().build_wheels
    build(dest)
    build(dest, FIXTURES / "blame-packages")
    return dest


@dataclass(frozen=True)
class Scenario:
    course: Path
    config: Config
    report: Report

    def blame(self, path: str) -> blame.BlameResult:
        """Confirm the inferred culprit of one notebook, as `nbguard blame` does."""
        nb = next(nb for nb in self.report.notebooks if nb.path == path)
        assert nb.verdict in {"broken", "changed"}, nb.runs
        upcoming = self.config.env("upcoming")
        with tempfile.TemporaryDirectory(prefix="nbguard-test-blame-") as scratch:
            machine = Machine(runspec.build_options(self.config))
            context = blame.BlameContext(
                runner=Runner(self.config, machine, Path(scratch)),
                interpreter=envs.interpreter_for(upcoming),
                prerelease=upcoming.prerelease,
                compare_options=runspec.compare_options(self.config),
                cache_dir=self.config.cache_dir,
                baseline_interpreter=envs.interpreter_for(self.config.env("locked")),
            )
            return blame.confirm(
                context,
                discover.read_notebook(self.course, path),
                self.report.envs["locked"],
                self.report.envs["upcoming"],
                nb.runs["locked"],
                nb.runs["upcoming"],
                nb.culprit,
            )


def scenario(
    root: Path,
    cache: Path,
    wheels: Path,
    locked: Sequence[str],
    loose: Sequence[str],
    notebooks: dict[str, list[str]],
    upcoming_python: str | None = None,
) -> Scenario:
    """A course pinned to `locked` (requirements.txt), upgrading `loose` (requirements.in),
    run by the pipeline in both envs."""
    course = root / "course"
    course.mkdir()
    (course / "requirements.txt").write_text("".join(f"{line}\n" for line in locked))
    (course / "requirements.in").write_text("".join(f"{line}\n" for line in loose))
    for name, cells in notebooks.items():
        nb = new_notebook(cells=[new_code_cell(source) for source in cells])
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python"}
        nbformat.write(nb, course / name)
    links = [str(kernel_wheelhouse()), str(wheels)]
    env_overrides: dict[str, dict[str, object]] = {}
    if upcoming_python is not None:
        links.append(str(kernel_wheelhouse(upcoming_python)))
        env_overrides["upcoming"] = {"python": upcoming_python}
    overrides = {"no-index": True, "find-links": links, "cache-dir": str(cache)}
    config = settings.load(course, overrides, env_overrides)
    return Scenario(course, config, pipeline.run(config))


@pytest.fixture(scope="module")
def gadget_course(
    tmp_path_factory: pytest.TempPathFactory, env_cache: Path, wheels: Path
) -> Scenario:
    """gadget 2.0 removes legacy_sum and needs wobble>=2; wobble 2.0 removes old_mean. Both
    move from 1.0 to 2.0, and reverting wobble drags gadget back with it."""
    return scenario(
        tmp_path_factory.mktemp("gadget"),
        env_cache,
        wheels,
        locked=[f"{GADGET}==1.0", f"{WOBBLE}==1.0"],
        loose=[GADGET, WOBBLE],
        notebooks={
            "totals.ipynb": ["import gadget", "print(gadget.legacy_sum([1, 2, 3]))"],
            "means.ipynb": [
                "import gadget, wobble",
                "print(gadget.total([1, 2]))",
                "print(wobble.old_mean([1, 2, 3]))",
            ],
        },
    )


def test_a_removed_function_is_confirmed_by_reverting_its_package(
    gadget_course: Scenario,
) -> None:
    result = gadget_course.blame("totals.ipynb")
    culprit = result.culprit
    assert culprit is not None
    assert (culprit.package, culprit.from_version, culprit.to_version) == (GADGET, "1.0", "2.0")
    assert culprit.evidence == "confirmed"
    assert result.steps[0] == f"revert {GADGET} 2.0 → 1.0: runs [{_env_tag(result)}]"
    assert result.envs_used == 1
    assert result.seconds > 0


def _env_tag(result: blame.BlameResult) -> str:
    # Built now, or by another test of the session sharing the env cache.
    return "new env" if result.envs_built else "env from the cache"


def test_a_package_that_cannot_be_reverted_alone_is_still_isolated(
    gadget_course: Scenario,
) -> None:
    """Reverting wobble takes gadget back too (gadget 2.0 needs wobble>=2); the env with
    only gadget reverted still fails, and that pair isolates wobble."""
    result = gadget_course.blame("means.ipynb")
    culprit = result.culprit
    assert culprit is not None
    assert (culprit.package, culprit.from_version, culprit.to_version) == (WOBBLE, "1.0", "2.0")
    assert culprit.evidence == "confirmed"
    assert f"but {GADGET} 1.0" in culprit.reason
    assert f"({GADGET} 2.0 → 1.0 moved with it)" in result.steps[0]


def test_a_second_blame_is_answered_from_the_cache(gadget_course: Scenario) -> None:
    first = gadget_course.blame("totals.ipynb")  # cached by the test above, or now
    second = gadget_course.blame("totals.ipynb")
    assert second.culprit == first.culprit
    assert (second.envs_built, second.envs_used) == (0, 0)
    assert second.steps[0].startswith("answered from the blame cache")
    assert second.seconds < 1.0


def test_two_upgrades_that_only_break_together_are_named_together(
    tmp_path: Path, env_cache: Path, wheels: Path
) -> None:
    """left 2.0 spells units out, right 2.0 takes symbols only: either upgrade alone runs."""
    course = scenario(
        tmp_path,
        env_cache,
        wheels,
        locked=["nbguard-demo-left==1.0", "nbguard-demo-right==1.0"],
        loose=["nbguard-demo-left", "nbguard-demo-right"],
        notebooks={
            "units.ipynb": [
                "import left, right",
                "value, unit = left.reading()\nprint(right.to_cm(value, unit))",
            ]
        },
    )
    inferred = course.report.notebooks[0].culprit
    assert inferred is not None and inferred.package == "nbguard-demo-right"  # the traceback's
    culprit = course.blame("units.ipynb").culprit
    assert culprit is not None
    assert culprit.package == "nbguard-demo-left + nbguard-demo-right"
    assert (culprit.from_version, culprit.to_version) == ("1.0 + 1.0", "2.0 + 2.0")
    assert culprit.evidence == "confirmed"
    assert "break together" in culprit.reason


def test_a_stdlib_module_removed_in_a_newer_python_blames_python(
    tmp_path: Path, env_cache: Path, wheels: Path
) -> None:
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the story needs Python 3.11 (imp exists) as the locked interpreter")
    try:
        interpreters.find("3.12")
    except InterpreterNotFound:
        pytest.skip("no Python 3.12 on this machine for the upcoming env (imp is gone there)")
    course = scenario(
        tmp_path,
        env_cache,
        wheels,
        locked=[f"{WOBBLE}==1.0"],
        loose=[WOBBLE],  # wobble moves too, but the notebook only uses what stayed
        notebooks={
            "legacy.ipynb": [
                "import wobble\nprint(wobble.mean([1, 2]))",
                "import imp\nprint(imp.get_magic() is not None)",
            ]
        },
        upcoming_python="3.12",
    )
    result = course.blame("legacy.ipynb")
    culprit = result.culprit
    assert culprit is not None
    assert culprit.package == "python"
    assert culprit.from_version is not None and culprit.from_version.startswith("3.11.")
    assert culprit.to_version is not None and culprit.to_version.startswith("3.12.")
    assert culprit.evidence == "confirmed"
    assert result.steps[0].startswith("locked packages lifted to Python 3.12 (no bump needed)")


SPROCKET = "nbguard-demo-sprocket"


def _needs_312() -> None:
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the story needs Python 3.11 (sprocket 1.0's only wheel) as the locked one")
    try:
        interpreters.find("3.12")
    except InterpreterNotFound:
        pytest.skip("no Python 3.12 on this machine for the upcoming env")


def sprocket_course(root: Path, cache: Path, wheels: Path, *cells: str) -> Scenario:
    """sprocket 1.0 locked on 3.11 (its wheel is cp311 only), 2.0 upcoming on 3.12."""
    return scenario(
        root,
        cache,
        wheels,
        locked=[f"{SPROCKET}==1.0"],
        loose=[SPROCKET],
        notebooks={"gears.ipynb": ["import sprocket", *cells]},
        upcoming_python="3.12",
    )


def test_a_locked_version_with_no_wheel_for_the_new_python_is_a_one_line_answer(
    tmp_path: Path, env_cache: Path, wheels: Path
) -> None:
    """Probes install wheels only: pinning sprocket 1.0 on 3.12 fails in seconds, saying so."""
    _needs_312()
    course = sprocket_course(tmp_path, env_cache, wheels, "print(sprocket.scaled_teeth(2, 3))")
    interp = interpreters.find("3.12")
    options = runspec.build_options(course.config)
    locked = course.report.envs["locked"]
    started = time.monotonic()
    probe = envs.build_variant(
        "probe", interp, locked, {SPROCKET: "1.0"}, options, wheels_only=True
    )

    assert probe.error is not None
    assert probe.error.endswith(f"{SPROCKET} 1.0 has no wheel for Python 3.12")
    assert "\n" not in probe.error
    assert time.monotonic() - started < 30


def test_a_revert_on_the_new_python_goes_to_the_nearest_version_with_a_wheel(
    tmp_path: Path, env_cache: Path, wheels: Path
) -> None:
    """scaled_teeth is gone in 2.0; the lock lifted to 3.12 (sprocket 1.1) runs, so Python is
    innocent and reverting sprocket to 1.1 confirms it."""
    _needs_312()
    course = sprocket_course(tmp_path, env_cache, wheels, "print(sprocket.scaled_teeth(2, 3))")
    result = course.blame("gears.ipynb")
    culprit = result.culprit

    assert culprit is not None and culprit.evidence == "confirmed", result.steps
    assert (culprit.package, culprit.from_version, culprit.to_version) == (SPROCKET, "1.0", "2.0")
    assert result.steps[0].startswith(
        f"locked packages lifted to Python 3.12 (forced bumps: {SPROCKET} 1.0 → 1.1): runs"
    )
    assert result.steps[1].startswith(
        f"revert {SPROCKET} 2.0 → 1.1 (nearest to locked 1.0 with wheels for Python 3.12): runs"
    )


def test_a_forced_bump_that_breaks_the_notebook_is_confirmed_on_the_old_python(
    tmp_path: Path, env_cache: Path, wheels: Path
) -> None:
    """legacy_teeth is gone from 1.1, the first sprocket for 3.12: no env on 3.12 has it, so
    sprocket bumped to 1.1 on Python 3.11 is the failing half of the pair."""
    _needs_312()
    course = sprocket_course(tmp_path, env_cache, wheels, "print(sprocket.legacy_teeth(2))")
    result = course.blame("gears.ipynb")
    culprit = result.culprit

    assert culprit is not None and culprit.evidence == "confirmed", result.steps
    assert culprit.package == SPROCKET
    assert "on Python 3.11" in culprit.reason and "1.0 runs, 1.1" in culprit.reason
    assert result.steps[1].startswith(f"on Python 3.11, bump {SPROCKET} 1.0 → 1.1: fails")


def test_python_is_confirmed_when_the_lifted_lock_fails_and_its_bumps_run_on_the_old_python(
    tmp_path: Path, env_cache: Path, wheels: Path
) -> None:
    _needs_312()
    course = sprocket_course(
        tmp_path, env_cache, wheels, "import imp\nprint(imp.get_magic() is not None)"
    )
    result = course.blame("gears.ipynb")
    culprit = result.culprit

    assert culprit is not None and culprit.evidence == "confirmed", result.steps
    assert culprit.package == "python"
    assert f"forced bumps {SPROCKET} 1.0 → 1.1" in culprit.reason
    assert result.steps[1].startswith(f"on Python 3.11, bump {SPROCKET} 1.0 → 1.1: runs")


def test_a_revert_that_cannot_be_resolved_falls_back_to_inferred_and_says_why(
    tmp_path: Path, env_cache: Path, wheels: Path
) -> None:
    """This semester adds gizmo, whose only release needs wobble>=2: wobble 1.0 cannot be
    put back into the upcoming env, so nothing isolates wobble in a notebook that imports
    gizmo too. In one that never imports gizmo, gizmo cannot be what broke it: the audit's
    own two envs are the pair, as the kernels' records of what they imported show."""
    course = scenario(
        tmp_path,
        env_cache,
        wheels,
        locked=[f"{WOBBLE}==1.0"],
        loose=[WOBBLE, "nbguard-demo-gizmo"],
        notebooks={
            "both.ipynb": [
                "import wobble\ntry:\n    import gizmo  # this semester's\nexcept ImportError:\n"
                "    gizmo = None",
                "print(wobble.old_mean([1, 2, 3]))",
            ],
            "means.ipynb": ["import wobble", "print(wobble.old_mean([1, 2, 3]))"],
        },
    )
    result = course.blame("both.ipynb")
    culprit = result.culprit
    assert culprit is not None
    assert (culprit.package, culprit.from_version, culprit.to_version) == (WOBBLE, "1.0", "2.0")
    assert culprit.evidence == "inferred"
    assert "not confirmed" in culprit.reason
    assert "cannot resolve" in culprit.reason and "nbguard-demo-gizmo" in culprit.reason
    assert result.envs_built == 0

    never = course.blame("means.ipynb").culprit
    assert never is not None and never.evidence == "confirmed"
    assert never.reason.startswith(
        f"envs that differ only in {WOBBLE}, besides nbguard-demo-gizmo, which neither run "
        "imported (everything else as in upcoming): 1.0 runs, 2.0 fails the same way"
    )


def test_pip_tools_moves_a_dependent_package_when_a_revert_needs_it(
    gadget_course: Scenario,
) -> None:
    """pip-compile will not drop a preferred pin that conflicts (gadget 2.0 needs wobble>=2);
    the variant is resolved again without preferences, and gadget comes back to 1.0."""
    config = replace(gadget_course.config, resolver="pip-tools")
    upcoming = gadget_course.report.envs["upcoming"]
    interp = envs.interpreter_for(config.env("upcoming"))
    probe = envs.build_variant(
        "probe", interp, upcoming, {WOBBLE: "1.0"}, runspec.build_options(config)
    )
    assert probe.error is None
    assert (probe.packages[WOBBLE], probe.packages[GADGET]) == ("1.0", "1.0")
    # With gadget back at 1.0, the rest matches the locked env pin for pin.
    assert probe.packages == gadget_course.report.envs["locked"].packages
