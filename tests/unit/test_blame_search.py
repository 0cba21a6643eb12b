"""Fast tier: blame's search against a fake prober (as pip-tools tests its resolver against a
FakeRepository). The fake's envs are package lists, its resolver moves a package along when
another needs it, and each story says which versions reproduce the failure; the tests assert
the culprit, or the reason, that a user would read. No env, no kernel, milliseconds.

At the end, the real prober's edges on the pipeline's fake backend: `--blame` wired through
the runner, and a probe that nbguard itself fails on."""

from __future__ import annotations

import ast
import itertools
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nbguard import pipeline, settings
from nbguard.blame import search as search_module
from nbguard.blame.search import PYTHON, Direction, Outcome, Question, Seen, find
from nbguard.envs.interpreters import Interpreter
from nbguard.model import Culprit, EnvInfo, Notebook, NotebookRun
from tests.support.fakes import FakeBackend, printed, raised, write_course

# What the notebook does in an env with this Python and these packages.
Story = Callable[[str | None, Mapping[str, str]], Outcome]
DETAIL: Mapping[Outcome, str] = {
    "same": "fails the same way",
    "gone": "runs",
    "other": "fails differently",
    "unbuilt": "cannot be built",
}


def env(name: str, python: str, **packages: str) -> EnvInfo:
    return EnvInfo(name, python, packages, f"fp-{name}")


LOCKED = env("locked", "3.11.9", gadget="1.0", wobble="1.0")
UPCOMING = env("upcoming", "3.11.9", gadget="2.0", wobble="2.0")


def fails_when(holds: Callable[[str | None, Mapping[str, str]], bool]) -> Story:
    return lambda python, packages: "same" if holds(python, packages) else "gone"


@dataclass
class FakeProber:
    """Probe envs built from package lists. `needs` maps (package, version) to the
    (dependency, version) it requires: a package that is not pinned moves to its other
    version to fit, an unpinned dependency moves to the one required, and when both are
    pinned (or the package has no other version) the env cannot be built. `lifts` maps a
    package whose locked version has no wheel on the upcoming Python to the nearest version
    that has one: lifting the locked env takes it there, and reverts stop there."""

    before: EnvInfo
    after: EnvInfo
    story: Story
    needs: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    lifts: Mapping[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)  # the probes built, in order
    resolved: list[str] = field(default_factory=list)  # the probes only resolved
    noise: Outcome | None = None  # what running the notebook again in `before` shows
    imports: frozenset[str] | None = None  # the packages every run imports (None: unknown)

    @property
    def lifted(self) -> dict[str, str]:
        return {**self.before.packages, **self.lifts}

    def revert(self, names: Sequence[str]) -> Seen:
        pins = {n: self.lifted[n] for n in names}
        shown = ", ".join(f"{n} {self.after.packages[n]} → {v}" for n, v in pins.items())
        return self._probe(f"revert {shown}", self.after, pins)

    def upgrade(self, names: Sequence[str]) -> Seen:
        pins = {n: self.after.packages[n] for n in names}
        shown = ", ".join(f"{n} {self.before.packages[n]} → {v}" for n, v in pins.items())
        base = replace(self.before, packages=self.lifted)
        return self._probe(f"from {self.before.name}, upgrade {shown}", base, pins)

    def python(self) -> Seen:
        label = f"{self.before.name} packages lifted to Python {self.after.python}"
        return self._probe(label, self.before, self.lifts, asked=set(self.lifts))

    def pin(self, versions: Mapping[str, str], old: bool = False) -> Seen:
        shown = ", ".join(f"{n} → {v}" for n, v in versions.items())
        if old:
            label = f"on Python {self.before.python}, only {shown}"
            return self._probe(label, self.before, versions, python=self.before.python)
        base = replace(self.before, packages=self.lifted)
        return self._probe(f"from {self.before.name}, only {shown}", base, versions)

    def bump(self, names: Sequence[str]) -> Seen:
        pins = {n: self.lifted[n] for n in names}
        shown = ", ".join(f"{n} {self.before.packages[n]} → {v}" for n, v in pins.items())
        label = f"on Python {self.before.python}, bump {shown}"
        return self._probe(label, self.before, pins, python=self.before.python)

    def moves(self, direction: Direction, names: Sequence[str]) -> tuple[str, ...] | None:
        self.resolved.append(f"{direction} {', '.join(names)}")
        dry = replace(self, story=lambda _, __: "same", asked=[], resolved=[])
        seen = dry.revert(names) if direction == "revert" else dry.upgrade(names)
        return None if seen.outcome == "unbuilt" else seen.moved

    def again(self) -> Seen:
        self.asked.append(f"{self.before.name} again")
        outcome = self.noise or self.story(self.before.python, self.before.packages)
        return Seen(f"{self.before.name}", self.before.python, {}, outcome, DETAIL[outcome])

    def _probe(
        self,
        label: str,
        base: EnvInfo,
        pins: Mapping[str, str],
        python: str | None = None,
        asked: set[str] | None = None,
    ) -> Seen:
        self.asked.append(label)
        python = python or self.after.python
        packages = {**base.packages, **pins}
        while conflict := self._conflict(packages):
            package, dependency, version = conflict
            other = self._other(package, packages[package])
            if package not in pins and other is not None:
                packages[package] = other
            elif dependency not in pins:
                packages[dependency] = version
            else:
                why = f"cannot be built: {package} {packages[package]} needs {dependency} {version}"
                return Seen(label, python, {}, "unbuilt", why)
        if python == self.after.python:
            for name in self.lifts:
                if packages.get(name) == self.before.packages[name]:
                    why = f"cannot be built: {name} {packages[name]} has no wheel for {python}"
                    return Seen(label, python, {}, "unbuilt", why)
        wanted = set(pins) if asked is None else asked
        moved = tuple(
            sorted(n for n in packages if n not in wanted and packages[n] != base.packages.get(n))
        )
        outcome = self.story(python, packages)
        return Seen(label, python, packages, outcome, DETAIL[outcome], moved, self.imports)

    def _conflict(self, packages: Mapping[str, str]) -> tuple[str, str, str] | None:
        for (package, version), (dependency, needed) in self.needs.items():
            if packages.get(package) == version and packages.get(dependency) != needed:
                return package, dependency, needed
        return None

    def _other(self, package: str, version: str) -> str | None:
        versions = {self.lifted.get(package), self.after.packages.get(package)}
        return next((v for v in versions - {version, None}), None)


def blame(
    prober: FakeProber, *candidates: str, fails: str = "fails the same way"
) -> tuple[str | None, str]:
    """(culprit package, its reason) when confirmed, else (None, why not)."""
    imported = (prober.imports, prober.imports)
    question = Question(prober.before, prober.after, candidates, fails, imported=imported)
    found = find(question, prober)
    if found.culprit is None:
        return None, found.why_not
    assert found.culprit.evidence == "confirmed"
    return found.culprit.package, found.culprit.reason


def test_a_single_upgrade_that_breaks_the_notebook_is_confirmed_in_two_probes() -> None:
    prober = FakeProber(LOCKED, UPCOMING, fails_when(lambda _, p: p["gadget"] == "2.0"))

    assert blame(prober, "gadget", "wobble") == (
        "gadget",
        "envs that differ only in gadget (everything else as in upcoming): 1.0 runs, 2.0 fails "
        "the same way; upgrading only gadget from locked fails the same way too",
    )
    assert prober.asked == ["revert gadget 2.0 → 1.0", "from locked, upgrade gadget 1.0 → 2.0"]


def test_a_wrong_first_guess_costs_one_probe_and_the_reason_says_what_else_differed() -> None:
    prober = FakeProber(LOCKED, UPCOMING, fails_when(lambda _, p: p["gadget"] == "2.0"))

    culprit, reason = blame(prober, "wobble", "gadget")

    assert culprit == "gadget"
    assert reason.startswith(
        "envs that differ only in gadget (everything else as in upcoming but wobble 1.0)"
    )
    assert len(prober.asked) == 2


def test_one_culprit_among_many_upgrades_is_found_by_bisection() -> None:
    names = [f"pkg{i}" for i in range(16)]
    before = env("locked", "3.11.9", **dict.fromkeys(names, "1.0"))
    after = env("upcoming", "3.11.9", **dict.fromkeys(names, "2.0"))
    prober = FakeProber(before, after, fails_when(lambda _, p: p["pkg11"] == "2.0"))

    culprit, _ = blame(prober, *names)

    assert culprit == "pkg11"
    assert len(prober.asked) <= 10  # delta debugging halves the suspects: not one per package


def test_two_upgrades_that_only_break_together_are_named_together() -> None:
    before = env("locked", "3.11.9", left="1.0", right="1.0")
    after = env("upcoming", "3.11.9", left="2.0", right="2.0")
    story = fails_when(lambda _, p: p["left"] == p["right"] == "2.0")

    assert blame(FakeProber(before, after, story), "right", "left") == (
        "left + right",
        "rebuilt: left and right break together: upgrading all of them from locked fails the "
        "same way, leaving any one at its locked version runs",
    )


def test_a_culprit_whose_revert_drags_a_dependent_package_along_is_still_isolated() -> None:
    """gadget 2.0 needs wobble 2.0, and wobble 2.0 is what breaks the notebook: reverting
    wobble takes gadget back too, so that env proves nothing; the env with only gadget
    reverted still fails, and with the env of both reverted it isolates wobble."""
    prober = FakeProber(
        LOCKED,
        UPCOMING,
        fails_when(lambda _, p: p["wobble"] == "2.0"),
        needs={("gadget", "2.0"): ("wobble", "2.0")},
    )

    assert blame(prober, "wobble", "gadget") == (
        "wobble",
        "envs that differ only in wobble (everything else as in upcoming but gadget 1.0): 1.0 "
        "runs, 2.0 fails the same way; upgrading only wobble from locked fails the same way too",
    )


def test_python_alone_breaking_the_notebook_is_the_culprit() -> None:
    before = env("locked", "3.11.9", wobble="1.0")
    after = env("upcoming", "3.12.4", wobble="2.0")
    prober = FakeProber(before, after, fails_when(lambda python, _: python == "3.12.4"))

    assert blame(prober, PYTHON, "wobble") == (
        PYTHON,
        "rebuilt: the locked packages on Python 3.12.4 fails the same way, on Python 3.11.9 "
        "they run",
    )
    assert prober.asked == ["locked packages lifted to Python 3.12.4"]


def test_a_package_is_blamed_when_python_moved_too_but_the_old_packages_run_on_it() -> None:
    before = env("locked", "3.11.9", gadget="1.0", wobble="1.0")
    after = env("upcoming", "3.12.4", gadget="2.0", wobble="2.0")
    prober = FakeProber(before, after, fails_when(lambda _, p: p["gadget"] == "2.0"))

    culprit, reason = blame(prober, "gadget", "wobble", PYTHON)

    assert culprit == "gadget"
    assert reason.endswith("the locked packages lifted to Python 3.12.4 run")


# A 2021 lock on Python 3.9 against today's releases on 3.12: numpy 1.21 has no wheel for
# Python 3.12, its nearest that has is 1.26; pandas 1.3 neither, 2.1 needs numpy 1.26.
OLD_PY = env("locked", "3.9.18", numpy="1.21", pandas="1.3", wobble="1.0")
NEW_PY = env("upcoming", "3.12.1", numpy="2.0", pandas="3.0", wobble="2.0")
LIFTS = {"numpy": "1.26", "pandas": "2.1"}
NEEDS = {("pandas", "2.1"): ("numpy", "1.26"), ("pandas", "3.0"): ("numpy", "2.0")}


def test_a_revert_on_the_new_python_stops_at_the_nearest_version_with_wheels() -> None:
    """np.product: gone in numpy 2.0, still in 1.26 (the nearest to the locked 1.21 that
    installs on 3.12). The locked packages lifted to 3.12 run: Python is innocent."""
    story = fails_when(lambda _, p: p["numpy"] == "2.0")
    prober = FakeProber(OLD_PY, NEW_PY, story, lifts=LIFTS)

    culprit, reason = blame(prober, "numpy", "wobble", PYTHON)

    assert culprit == "numpy"
    assert "1.26 (nearest to locked's 1.21 with wheels for Python 3.12.1) runs, 2.0 fails" in reason
    assert reason.endswith("the locked packages lifted to Python 3.12.1 run")
    assert prober.asked == [
        "locked packages lifted to Python 3.12.1",
        "revert numpy 2.0 → 1.26",
    ]


def test_python_is_confirmed_when_the_lifted_packages_fail_and_the_bumps_run_on_old_python() -> (
    None
):
    """`import imp`: gone in Python 3.12, whatever the packages."""
    story = fails_when(lambda python, _: python == "3.12.1")
    prober = FakeProber(OLD_PY, NEW_PY, story, needs=NEEDS, lifts=LIFTS)

    culprit, reason = blame(prober, "numpy", PYTHON)

    assert culprit == PYTHON
    assert reason == (
        "rebuilt: the locked packages lifted to Python 3.12.1 (forced bumps numpy 1.21 → 1.26, "
        "pandas 1.3 → 2.1) fails the same way; the same versions on Python 3.9.18 run"
    )
    assert prober.asked[-1] == "on Python 3.9.18, bump numpy 1.21 → 1.26, pandas 1.3 → 2.1"


def test_a_forced_bump_that_breaks_the_notebook_is_confirmed_on_the_old_python() -> None:
    """np.int: gone in numpy 1.24, so no numpy with wheels for 3.12 has it; numpy bumped to
    1.26 on Python 3.9 (where 1.21 exists too) isolates it."""
    story = fails_when(lambda _, p: p["numpy"] in {"1.26", "2.0"})
    prober = FakeProber(OLD_PY, NEW_PY, story, needs=NEEDS, lifts=LIFTS)

    culprit, reason = blame(prober, "numpy", "pandas", PYTHON)

    assert culprit == "numpy"
    assert reason.startswith("rebuilt: the locked packages lifted to Python 3.12.1 fails")
    assert "on Python 3.9.18, envs that differ only in numpy: 1.21 runs, 1.26" in reason
    assert prober.asked[-1] == "on Python 3.9.18, bump numpy 1.21 → 1.26"


def test_a_forced_bump_that_drags_its_dependency_along_is_isolated_on_the_old_python() -> None:
    """Series.iteritems: gone in pandas 2.0; pandas 2.1 on Python 3.9 needs numpy 1.26, so
    the old env with only numpy at 1.26 is the running half of the pair."""
    story = fails_when(lambda _, p: p["pandas"] != "1.3")
    prober = FakeProber(OLD_PY, NEW_PY, story, needs=NEEDS, lifts=LIFTS)

    culprit, reason = blame(prober, "pandas", "numpy", PYTHON)

    assert culprit == "pandas"
    assert "envs that differ only in pandas: 1.3 runs, 2.1" in reason
    assert prober.asked == [
        "locked packages lifted to Python 3.12.1",
        "on Python 3.9.18, bump pandas 1.3 → 2.1",
        "on Python 3.9.18, only numpy → 1.26",
    ]


def test_a_package_the_notebook_never_imports_needs_no_env_of_its_own() -> None:
    """np.int on Python 3.9: numpy 1.26 drags scipy up with it, but the notebook imports
    numpy alone, so scipy's version cannot tell the two runs apart: the bump and the locked
    env are the pair, and no env with only scipy moved is built."""
    before = env("locked", "3.9.18", numpy="1.21", scipy="1.7")
    after = env("upcoming", "3.12.1", numpy="2.0", scipy="1.14")
    needs = {("numpy", "1.26"): ("scipy", "1.10")}
    story = fails_when(lambda _, p: p["numpy"] != "1.21")
    lifts = {"numpy": "1.26", "scipy": "1.10"}
    prober = FakeProber(
        before, after, story, needs=needs, lifts=lifts, imports=frozenset({"numpy"})
    )

    culprit, reason = blame(prober, "numpy", "scipy", PYTHON)

    assert culprit == "numpy"
    assert (
        "on Python 3.9.18, envs that differ only in numpy, besides scipy, which neither run "
        "imported: 1.21 runs, 1.26"
    ) in reason
    assert prober.asked == [
        "locked packages lifted to Python 3.12.1",
        "on Python 3.9.18, bump numpy 1.21 → 1.26",
    ]

    # Imported, scipy might be what breaks it: the env with only scipy moved answers that.
    imported = replace(prober, asked=[], imports=frozenset({"numpy", "scipy"}))
    culprit, reason = blame(imported, "numpy", "scipy", PYTHON)

    assert culprit == "numpy"
    assert "besides" not in reason
    assert imported.asked[-1] == "on Python 3.9.18, only scipy → 1.10"


def test_a_pair_needing_fewer_envs_is_chosen_by_resolving_before_building() -> None:
    """The lifted packages run on 3.12. Reverting wobble on top of this semester's releases
    drags numpy back (wobble 1.0 needs numpy 1.26): resolved, not built. Upgrading wobble from
    the lifted env drags gadget up; gadget alone at 2.0 runs: two envs confirm wobble."""
    before = env("locked", "3.9.18", numpy="1.21", gadget="1.0", wobble="1.0")
    after = env("upcoming", "3.12.1", numpy="2.0", gadget="2.0", wobble="2.0")
    needs = {("wobble", "1.0"): ("numpy", "1.26"), ("wobble", "2.0"): ("gadget", "2.0")}
    story = fails_when(lambda _, p: p["wobble"] == "2.0")
    prober = FakeProber(before, after, story, needs=needs, lifts={"numpy": "1.26"})

    culprit, reason = blame(prober, "wobble", "gadget", PYTHON)

    assert culprit == "wobble"
    assert "envs that differ only in wobble, on Python 3.12.1" in reason
    assert prober.asked == [
        "locked packages lifted to Python 3.12.1",
        "from locked, upgrade wobble 1.0 → 2.0",
        "from locked, only gadget → 2.0",
    ]
    assert prober.resolved == ["revert wobble", "upgrade wobble"]


def test_an_output_that_changes_between_two_runs_of_the_running_env_is_never_confirmed() -> None:
    """A clock printed: every env "changes the same way", so any probe would seem to
    confirm the first candidate; one more run in locked shows it is noise."""
    prober = FakeProber(LOCKED, UPCOMING, fails_when(lambda _, __: True), noise="same")

    culprit, reason = blame(prober, "gadget", "wobble", fails="changes the same way")

    assert culprit is None
    assert reason == "the outputs differ between two runs in locked too"
    assert prober.asked == ["locked again"]


def test_a_reproducible_output_change_costs_one_run_of_the_running_env_more() -> None:
    prober = FakeProber(LOCKED, UPCOMING, fails_when(lambda _, p: p["gadget"] == "2.0"))

    culprit, _ = blame(prober, "gadget", "wobble", fails="changes the same way")

    assert culprit == "gadget"
    assert prober.asked[0] == "locked again"


def test_a_revert_that_cannot_be_built_is_the_reason_nothing_was_confirmed() -> None:
    """gizmo is new this semester and needs wobble 2.0: wobble 1.0 cannot go back in."""
    before = env("locked", "3.11.9", wobble="1.0")
    after = env("upcoming", "3.11.9", wobble="2.0", gizmo="1.0")
    prober = FakeProber(
        before,
        after,
        fails_when(lambda _, p: p["wobble"] == "2.0"),
        needs={("gizmo", "1.0"): ("wobble", "2.0")},
    )

    assert blame(prober, "wobble") == (
        None,
        "revert wobble 2.0 → 1.0: cannot be built: gizmo 1.0 needs wobble 2.0",
    )


def test_probes_that_all_fail_differently_confirm_nothing_and_say_so() -> None:
    def story(_: str | None, packages: Mapping[str, str]) -> Outcome:
        return "gone" if packages == LOCKED.packages else "other"

    assert blame(FakeProber(LOCKED, UPCOMING, story), "gadget", "wobble") == (
        None,
        "no rebuilt env isolated one change among gadget, wobble (each probe still showed the "
        "failure, or failed differently)",
    )


def test_an_output_change_is_told_as_one() -> None:
    prober = FakeProber(LOCKED, UPCOMING, fails_when(lambda _, p: p["gadget"] == "2.0"))

    _, reason = blame(prober, "gadget", fails="changes the same way")

    assert "1.0 runs, 2.0 changes the same way" in reason


def test_nothing_changed_between_the_envs_needs_no_probe() -> None:
    prober = FakeProber(LOCKED, LOCKED, fails_when(lambda _, __: True))

    assert blame(prober) == (None, "no package changed between the envs")
    assert prober.asked == []


def test_the_search_imports_nothing_that_builds_runs_or_reads() -> None:
    """Its docstring promises a pure function: only the standard library and nbguard.model."""
    assert search_module.__file__ is not None
    tree = ast.parse(Path(search_module.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    ours = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert ours <= {"nbguard.model"}


# --- the real prober on the pipeline's fake backend ------------------------------------------


@dataclass
class ProbingBackend(FakeBackend):
    """The pipeline's fake backend, with probe envs: a variant is base's packages with the
    pins, named and fingerprinted by them."""

    def build_variant(
        self,
        name: str,
        interpreter: Interpreter,
        base: EnvInfo,
        pins: dict[str, str],
        *,
        prerelease: bool,
        progress: Callable[[str], None],
        wheels_only: bool = False,
        lift: bool = False,
        resolve_only: bool = False,
    ) -> EnvInfo:
        packages = {**base.packages, **pins}
        fp = "fp-" + ",".join(f"{n}={v}" for n, v in sorted(packages.items()))
        return EnvInfo(name, "3.11.7", packages, fp, interpreter=Path("/fake/probe/bin/python"))


def wobble_2_breaks(notebook: Notebook, env: EnvInfo) -> NotebookRun:
    if env.packages["wobble"] == "2.0":
        message = "module 'wobble' has no attribute 'old'"
        return raised(notebook.path, env.name, "AttributeError", message)
    return printed(notebook.path, env.name, "same everywhere")


# Both packages move, so only probes can tell which one broke the notebook.
TWO_MOVED = {
    "locked": {"gadget": "1.0", "wobble": "1.0"},
    "upcoming": {"gadget": "2.0", "wobble": "2.0"},
}


def blamed(tmp_path: Path, backend: FakeBackend) -> Culprit | None:
    course = write_course(tmp_path, ["nb.ipynb"])
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "blame": True})
    (nb,) = pipeline.run(config, backend=backend).notebooks
    assert nb.verdict == "broken"
    return nb.culprit


def test_blame_runs_its_probes_through_the_audits_runner(tmp_path: Path) -> None:
    scripts = {("nb.ipynb", env): wobble_2_breaks for env in ("upcoming", "upcoming-probe")}
    backend = ProbingBackend(TWO_MOVED, scripts)

    culprit = blamed(tmp_path, backend)

    assert culprit is not None and culprit.evidence == "confirmed"
    assert culprit.reason == (
        "envs that differ only in wobble (everything else as in upcoming): 1.0 runs, 2.0 fails "
        "the same way; upgrading only wobble from locked fails the same way too"
    )
    # Reverting wobble, then upgrading only wobble: each probe run like the audit's runs.
    assert backend.executed.count(("nb.ipynb", "upcoming-probe")) == 2


def test_a_probe_that_nbguard_fails_on_confirms_nothing(tmp_path: Path) -> None:
    """nbguard's own failure in a probe run is no answer, never "the notebook runs"."""
    scripts = {
        ("nb.ipynb", "upcoming"): wobble_2_breaks,
        ("nb.ipynb", "upcoming-probe"): RuntimeError("probe bug"),
    }
    backend = ProbingBackend(TWO_MOVED, scripts)

    culprit = blamed(tmp_path, backend)

    assert culprit is not None and culprit.evidence == "inferred"
    assert (
        "not confirmed: revert wobble 2.0 → 1.0: cannot be run: nbguard internal error: "
        "RuntimeError: probe bug;" in culprit.reason
    )


def test_a_spent_blame_budget_leaves_the_culprit_inferred_and_says_so(tmp_path: Path) -> None:
    scripts = {("nb.ipynb", env): wobble_2_breaks for env in ("upcoming", "upcoming-probe")}
    backend = ProbingBackend(TWO_MOVED, scripts)
    course = write_course(tmp_path, ["nb.ipynb"])
    overrides = {"cache-dir": str(tmp_path / "cache"), "blame": True, "blame-budget": "1e-9"}
    config = settings.load(course, overrides)

    (nb,) = pipeline.run(config, backend=backend).notebooks

    assert nb.culprit is not None and nb.culprit.evidence == "inferred"
    assert nb.culprit.reason.endswith("not confirmed: blame budget of 1e-09 s spent")
    assert ("nb.ipynb", "upcoming-probe") not in backend.executed


def test_an_unseeded_draw_the_notebook_prints_is_noise_no_probe_is_built_for(
    tmp_path: Path,
) -> None:
    draws = itertools.count(17, 31)

    def draw(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        return printed(notebook.path, env.name, f"sample: {next(draws) % 97} apples")

    scripts = {("nb.ipynb", env): draw for env in ("locked", "upcoming", "upcoming-probe")}
    backend = ProbingBackend(TWO_MOVED, scripts)
    course = write_course(tmp_path, ["nb.ipynb"])
    cache = str(tmp_path / "cache")
    # With the audit's volatile re-run the draw is masked and nothing is left to blame ...
    audit = settings.load(course, {"cache-dir": cache, "blame": True})
    (masked,) = pipeline.run(audit, backend=backend).notebooks
    assert masked.verdict == "ok"
    assert ("nb.ipynb", "upcoming-probe") not in backend.executed
    # ... and without it, blame's own control run keeps the noise from confirming a culprit.
    backend.executed.clear()
    config = settings.load(course, {"cache-dir": cache, "blame": True, "volatile-rerun": False})

    report = pipeline.run(config, backend=backend)

    (nb,) = report.notebooks
    assert nb.verdict == "changed"
    assert nb.culprit is None or nb.culprit.evidence == "inferred"
    assert report.blame is not None
    assert report.blame.steps["nb.ipynb"][-1] == (
        "→ not confirmed: the outputs differ between two runs in locked too"
    )
    assert backend.executed.count(("nb.ipynb", "locked")) == 2  # the audit's run, and again
    assert ("nb.ipynb", "upcoming-probe") not in backend.executed


def test_a_changed_output_is_told_from_noise_by_the_audits_own_second_run(
    tmp_path: Path,
) -> None:
    """The audit ran the changed notebook twice in locked (volatile outputs): blame's "is it
    noise?" question takes that second run, and runs the notebook in locked no third time."""

    def wobble_2_prints_more(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        said = "hello" if env.packages["wobble"] == "1.0" else "hello, world"
        return printed(notebook.path, env.name, said)

    scripts = {("nb.ipynb", env): wobble_2_prints_more for env in ("locked", "upcoming")}
    scripts[("nb.ipynb", "upcoming-probe")] = wobble_2_prints_more
    backend = ProbingBackend(TWO_MOVED, scripts)
    course = write_course(tmp_path, ["nb.ipynb"])
    # No execution cache: it would hand back the second run too, and hide a third one.
    config = settings.load(
        course, {"cache-dir": str(tmp_path / "cache"), "blame": True, "cache": False}
    )

    report = pipeline.run(config, backend=backend)
    (nb,) = report.notebooks

    assert nb.verdict == "changed"
    assert nb.culprit is not None and nb.culprit.package == "wobble"
    assert nb.culprit.evidence == "confirmed"
    assert backend.executed.count(("nb.ipynb", "locked")) == 2  # the run and its second
    assert report.blame is not None
    assert report.blame.steps["nb.ipynb"][0] == "run again in locked (the audit's second run): runs"


@dataclass
class MovingPython(ProbingBackend):
    """Locked on Python 3.9, upcoming on 3.12; remembers each lift asked for."""

    lifts: list[str] = field(default_factory=list)
    lifted: threading.Event = field(default_factory=threading.Event)

    def build(
        self, spec: settings.EnvSpec, interpreter: Interpreter, progress: Callable[[str], None]
    ) -> EnvInfo:
        env = super().build(spec, interpreter, progress)
        return replace(env, python="3.9.18" if spec.name == "locked" else "3.12.1")

    def build_variant(
        self, name: str, interpreter: Interpreter, base: EnvInfo, pins: dict[str, str], **how: Any
    ) -> EnvInfo:
        if how.get("lift"):
            self.lifts.append(name)
            self.lifted.set()
        return super().build_variant(name, interpreter, base, pins, **how)


def test_the_lifted_env_is_built_while_the_audits_kernels_still_run(tmp_path: Path) -> None:
    """Python moved and a notebook broke: every blame's first probe is the locked packages
    lifted to the new Python, so it is built as soon as the first break is seen, while the
    other notebooks still run, not after all of them."""
    backend = MovingPython(TWO_MOVED, {})
    seen_during: list[bool] = []

    def slow(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        seen_during.append(backend.lifted.wait(10))  # still running when the lift is asked
        return printed(notebook.path, env.name, "same everywhere")

    backend.scripts = {
        ("a.ipynb", "upcoming"): wobble_2_breaks,
        ("z.ipynb", "locked"): slow,
    }
    course = write_course(tmp_path, ["a.ipynb", "z.ipynb"])
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "blame": True, "jobs": 4})

    (a, z) = pipeline.run(config, backend=backend).notebooks

    assert a.verdict == "broken" and z.verdict == "ok"
    assert seen_during == [True]
    assert backend.lifts[0] == "upcoming-probe"
