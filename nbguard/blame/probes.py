"""The real prober: builds the envs blame's search asks for (variants of the two given envs),
runs the notebook in each exactly as the audit does, and says whether the failure shows."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from nbguard import compare
from nbguard.blame.infer import KERNEL_MACHINERY, imported_packages
from nbguard.blame.search import Direction, Outcome, Seen
from nbguard.envs.interpreters import Interpreter
from nbguard.model import Comparison, EnvInfo, Notebook, NotebookRun
from nbguard.runner import Runner

FAILING = frozenset({"broken", "changed"})

# A probe as asked, before it is built: its label, the env it varies, the pins, the
# interpreter, the packages asked to move (None: the pins), whether the rest moves as little
# as it can (the lowest fitting versions).
_Asked = tuple[str, EnvInfo, dict[str, str], Interpreter, set[str] | None, bool]


class OutOfBudget(Exception):
    """The blame budget is spent: no further probe is built."""


class Probes:
    """A `search.Prober` over real envs. Remembers every outcome, by request and by env
    fingerprint (two requests may resolve to one env), and tells each probe as a step.

    Probe envs install wheels only unless `build_sdists`: a version with no wheel for a
    probe's Python is an answer in seconds ("numpy 1.21.2 has no wheel for Python 3.12"),
    never a build. When Python moved, `python()` lifts the running env's lock to the new
    Python (the nearest installable versions); reverts and upgrades then stand on it.
    """

    def __init__(
        self,
        runner: Runner,
        interpreters: tuple[Interpreter | None, Interpreter],
        prerelease: bool,
        notebook: Notebook,
        envs: tuple[EnvInfo, EnvInfo],
        runs: tuple[NotebookRun, NotebookRun],
        target: Comparison,
        options: compare.CompareOptions,
        ignored: frozenset[str],
        progress: Callable[[str], None],
        *,
        build_sdists: bool = False,
        deadline: float | None = None,
        stop: threading.Event | None = None,
        kernels: threading.Semaphore | None = None,
        second: NotebookRun | None = None,
    ) -> None:
        self.runner, self.prerelease = runner, prerelease
        self.old_interp, self.interp = interpreters
        self.notebook, self.target, self.options = notebook, target, options
        self.before, self.after = before, after = envs
        self.before_run, self.after_run = runs
        self.ignored, self.progress = ignored, progress
        self.wheels_only, self.deadline, self.stop = not build_sdists, deadline, stop
        self.kernels = kernels
        self.second = second  # the audit's own second run in `before`, when it made one
        self.fails = fails_text(target)
        assert before.fingerprint is not None and after.fingerprint is not None
        # Each env's answer by fingerprint, with the run that gave it (what it imported).
        self.runs: dict[str, tuple[Outcome, str, NotebookRun | None]] = {
            before.fingerprint: ("gone", f"runs (the env is {before.name} itself)", runs[0]),
            after.fingerprint: ("same", f"{self.fails} (the env is {after.name} itself)", runs[1]),
        }
        self.requests: dict[tuple[str, str, tuple[tuple[str, str], ...]], Seen] = {}
        self.lifted: EnvInfo | None = None  # the running env's lock on the new Python
        self.built = 0  # probe envs newly built, not taken from the env cache
        self.used: set[str] = set()  # fingerprints of the probe envs the notebook ran in
        self.steps: list[str] = []
        # Probes that got past the failing cell and failed later: (probe, its env, its run).
        self.hidden: list[tuple[str, EnvInfo, NotebookRun]] = []
        # Module files to compile in each probe env: what the notebook's two runs imported,
        # then what its probes' kernels did. Not every notebook's: the few notebooks sharing
        # a probe env each add what is new to them, and each env compiles only what its
        # notebooks need.
        self.learned: set[str] = {*self.before_run.imports, *self.after_run.imports}

    def step(self, text: str) -> None:
        self.steps.append(text)
        self.progress(f"blame {self.notebook.path}: {text}")

    @property
    def _new_python(self) -> str:
        return ".".join((self.after.python or "?").split(".")[:2])

    def revert(self, names: Sequence[str]) -> Seen:
        return self._asked(self._revert(names))

    def upgrade(self, names: Sequence[str]) -> Seen:
        asked = self._upgrade(names)
        return asked if isinstance(asked, Seen) else self._asked(asked)

    def _asked(self, asked: _Asked) -> Seen:
        label, base, pins, interp, wanted, nearest = asked
        return self._probe(label, base, pins, interp, wanted, nearest=nearest)

    def moves(self, direction: Direction, names: Sequence[str]) -> tuple[str, ...] | None:
        asked = self._revert(names) if direction == "revert" else self._upgrade(names)
        if isinstance(asked, Seen):
            return None
        _, base, pins, interp, wanted, nearest = asked
        env = self._variant(interp, base, pins, lift=nearest, resolve_only=True)
        if env.error is not None:
            return None
        return self._moved(env, base, set(pins) if wanted is None else wanted)

    def again(self) -> Seen:
        name = self.before.name
        if self.second is not None:
            # The audit ran it twice already (volatile outputs): that second run answers.
            outcome, detail = self._judge(self.second)
            self.step(f"run again in {name} (the audit's second run): {detail}")
            return Seen(name, self.before.python, self.before.packages, outcome, detail)
        self.progress(f"blame {self.notebook.path}: run again in {name}")
        # A second run the execution cache keeps apart from the first: never the first run
        # served back as if it were another.
        outcome, detail, _ = self._run(self.before, again=True)
        self.step(f"run again in {name}: {detail}")
        return Seen(name, self.before.python, self.before.packages, outcome, detail)

    def _revert(self, names: Sequence[str]) -> _Asked:
        reference = self.lifted or self.before
        pins = {name: reference.packages.get(name, self.before.packages[name]) for name in names}
        shown = []
        for name, version in pins.items():
            text = f"{name} {self.after.packages.get(name, '(absent)')} → {version}"
            locked = self.before.packages[name]
            if version != locked:
                text += (
                    f" (nearest to {self.before.name} {locked} with wheels for "
                    f"Python {self._new_python})"
                )
            shown.append(text)
        label = "revert " + fold(shown)
        return label, self.after, pins, self.interp, None, False

    def _upgrade(self, names: Sequence[str]) -> _Asked | Seen:
        reference = self.lifted or self.before
        old, new = reference.packages, self.after.packages
        shown = [f"{n} {old.get(n, '(absent)')} → {new.get(n, '(absent)')}" for n in names]
        lifted = " (lifted)" if self.lifted is not None else ""
        label = f"from {self.before.name}{lifted}, upgrade " + fold(shown)
        if self._python_moved:
            label += f" (Python {self._new_python})"
        gone = [name for name in names if name not in self.after.packages]
        if gone:
            # "Not installed" cannot be pinned: a removal can only be reverted.
            detail = f"cannot be built: {', '.join(gone)} is not in {self.after.name}"
            return Seen(label, self.after.python, {}, "unbuilt", detail)
        pins = self._reference_pins() | {name: self.after.packages[name] for name in names}
        return label, reference, pins, self.interp, set(names), self.lifted is not None

    def python(self) -> Seen:
        label = f"{self.before.name} packages lifted to Python {self._new_python}"
        return self._probe(label, self.before, lift_pins(self.after), self.interp, lift=True)

    def bump(self, names: Sequence[str]) -> Seen:
        lifted = self.lifted
        python = self.before.python or "?"
        moves = [
            f"{n} {self.before.packages.get(n, '(absent)')} → {lifted.packages[n]}"
            for n in names
            if lifted is not None and n in lifted.packages
        ]
        label = f"on Python {'.'.join(python.split('.')[:2])}, bump " + fold(moves)
        if lifted is None or self.old_interp is None:
            detail = "cannot be built: no lifted env, or no interpreter for the old Python"
            return Seen(label, python, {}, "unbuilt", detail)
        # What the bumps newly need (contourpy for matplotlib 3.7) is resolved for the old
        # Python, not pinned at the new one's version: it may have no wheel there.
        pins = {n: lifted.packages[n] for n in names if n in self.before.packages}
        # What the bumps force along moves as little as it can (its lowest fitting versions).
        return self._probe(
            label, self.before, pins, self.old_interp, asked=set(names), nearest=True
        )

    def pin(self, versions: Mapping[str, str], old: bool = False) -> Seen:
        if old:
            python = ".".join((self.before.python or "?").split(".")[:2])
            shown = [
                f"{n} {self.before.packages.get(n, '(absent)')} → {v}" for n, v in versions.items()
            ]
            label = f"on Python {python}, only what the bump moved: " + fold(shown)
            if self.old_interp is None:
                return Seen(label, self.before.python, {}, "unbuilt", "no old interpreter")
            return self._probe(label, self.before, dict(versions), self.old_interp, nearest=True)
        reference = self.lifted or self.before
        shown = [f"{n} {reference.packages.get(n, '(absent)')} → {v}" for n, v in versions.items()]
        lifted = " (lifted)" if self.lifted is not None else ""
        label = f"from {self.before.name}{lifted}, only what it moved: " + fold(shown)
        pins = self._reference_pins() | dict(versions)
        nearest = self.lifted is not None
        return self._probe(
            label, reference, pins, self.interp, asked=set(versions), nearest=nearest
        )

    @property
    def _python_moved(self) -> bool:
        return self.before.python != self.after.python

    def _reference_pins(self) -> dict[str, str]:
        # On another Python the running env's versions are pinned exactly, so a version with
        # no wheel there fails the probe (and says so) instead of being swapped silently. A
        # lifted env is built for that Python: an upgrade from it moves what it must, as
        # little as it can (the lowest fitting versions), and says what moved.
        if not self._python_moved or self.lifted is not None:
            return {}
        reference = self.lifted or self.before
        return {n: v for n, v in reference.packages.items() if n not in KERNEL_MACHINERY}

    def _probe(
        self,
        label: str,
        base: EnvInfo,
        pins: Mapping[str, str],
        interp: Interpreter,
        asked: set[str] | None = None,
        *,
        lift: bool = False,
        nearest: bool = False,
    ) -> Seen:
        """`lift`: this is the lift of `base` to `interp` (remembered as the reference);
        `nearest`: every other package of `base` at the lowest version ≥ its own that fits,
        so what the pins force along moves as little as it can."""
        how = "+lift" if lift else "+nearest" if nearest else ""
        key = (interp.version, base.name + how, tuple(sorted(pins.items())))
        if key in self.requests:
            return self.requests[key]
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfBudget(label)
        if self.stop is not None and self.stop.is_set():
            raise OutOfBudget(f"{label}: interrupted")
        self.progress(f"blame {self.notebook.path}: {label}")
        env = self._variant(interp, base, pins, lift=lift or nearest)
        if not env.ok or env.fingerprint is None:
            detail = f"cannot be built: {one_line(env.error or 'unknown error')}"
            seen = Seen(label, interp.version, {}, "unbuilt", detail)
            self.step(f"{label}: {detail}")
            self.requests[key] = seen
            return seen
        if lift:
            self.lifted = env
            label += _bumps(base, env, self.ignored)
        wanted = set(pins) if asked is None else asked
        moved = () if lift else self._moved(env, base, wanted)
        if not env.reused:
            self.built += 1
        cost = "new env" if not env.reused else "env from the cache"
        if env.fingerprint in self.runs:
            outcome, detail, run = self.runs[env.fingerprint]
            cost = "already run"
        else:
            self.used.add(env.fingerprint)
            self._compile(env)
            outcome, detail, run = self._run(env)
            self.runs[env.fingerprint] = (outcome, detail, run)
            if run is not None and detail.startswith("gets past"):
                self.hidden.append((label, env, run))
        imported = imported_packages(env, run)
        seen = Seen(label, env.python, env.packages, outcome, detail, moved, imported)
        self.requests[key] = seen
        along = ""
        if moved:
            shifts = [
                f"{n} {base.packages.get(n, '-')} → {env.packages.get(n, '-')}" for n in moved
            ]
            along = f" ({fold(shifts)} moved with it)"
        self.step(f"{label}{along}: {detail} [{cost}]")
        return seen

    def _moved(self, env: EnvInfo, base: EnvInfo, wanted: set[str]) -> tuple[str, ...]:
        return tuple(
            sorted(
                name
                for name in set(env.packages) | set(base.packages)
                if name not in wanted
                and name not in self.ignored
                and env.packages.get(name) != base.packages.get(name)
                # A dependency the pins newly need (zipp for matplotlib 3.7 on 3.9) is
                # added, not moved: nothing of the base changed for it.
                and name in base.packages
            )
        )

    def _variant(
        self,
        interp: Interpreter,
        base: EnvInfo,
        pins: Mapping[str, str],
        *,
        lift: bool,
        resolve_only: bool = False,
    ) -> EnvInfo:
        """The probe env: `base` with `pins` on `interp` (built, or with `resolve_only` only
        resolved, to see what else it would move)."""
        return variant(
            self.runner,
            self.after.name,
            interp,
            base,
            pins,
            prerelease=self.prerelease,
            progress=self.progress,
            wheels_only=self.wheels_only,
            lift=lift,
            resolve_only=resolve_only,
        )

    def _compile(self, env: EnvInfo) -> None:
        """Bytecode in the probe env for the modules the audit's runs imported (and the
        probes' so far), written before its kernel starts: the env has none, and the kernel
        cannot write it. Outside the kernel slots, like building the env."""
        if not self.learned:
            return
        started = time.monotonic()
        donors = tuple(e for e in (self.after, self.before) if e.python == env.python)
        done = self.runner.backend.compile_imports(env, tuple(sorted(self.learned)), donors)
        took = time.monotonic() - started
        self.progress(f"blame {self.notebook.path}: bytecode: {done} in {took:.1f} s")

    def _run(self, env: EnvInfo, *, again: bool = False) -> tuple[Outcome, str, NotebookRun | None]:
        if self.kernels is None:
            run = self.runner.run(self.notebook, env, again=again)
        else:
            with self.kernels:
                run = self.runner.run(self.notebook, env, again=again)
        self.learned.update(run.imports)
        if run.status == "env-failed":  # the course's own package cannot be installed there
            return "unbuilt", f"cannot be built: {one_line(run.reason or '')}", None
        if run.status == "internal-error":
            return "unbuilt", f"cannot be run: {run.reason}", None
        return (*self._judge(run), run)

    def _judge(self, run: NotebookRun) -> tuple[Outcome, str]:
        """Whether the failure being blamed shows in `run`, and how that reads."""
        probe = compare.compare_runs(self.before_run, run, self.options)
        return classify(self.target, self.after_run, probe, run)


def lift_pins(after: EnvInfo) -> dict[str, str]:
    """What a lift of the running env to `after`'s Python pins: the kernel's machinery at
    `after`'s versions, as it runs a kernel on that Python (an old ipykernel lifted to its
    lowest fitting release may not start there)."""
    return {n: v for n, v in after.packages.items() if n in KERNEL_MACHINERY}


def variant(
    runner: Runner,
    after: str,
    interp: Interpreter,
    base: EnvInfo,
    pins: Mapping[str, str],
    *,
    prerelease: bool,
    progress: Callable[[str], None],
    wheels_only: bool,
    lift: bool,
    resolve_only: bool = False,
) -> EnvInfo:
    """A probe env of blame's for env `after`: `base` with `pins` on `interp`."""
    return runner.backend.build_variant(
        f"{after}-probe",
        interp,
        base,
        dict(pins),
        prerelease=prerelease,
        progress=progress,
        wheels_only=wheels_only,
        lift=lift,
        resolve_only=resolve_only,
    )


def _bumps(base: EnvInfo, lifted: EnvInfo, ignored: frozenset[str]) -> str:
    """What lifting `base` to another Python had to move, folded: " (forced bumps: numpy
    1.21.2 → 1.26.0, … and 12 more)"."""
    moves = [
        f"{name} {version} → {lifted.packages[name]}"
        for name, version in sorted(base.packages.items())
        if name not in ignored and name in lifted.packages and lifted.packages[name] != version
    ]
    return f" (forced bumps: {fold(moves)})" if moves else " (no bump needed)"


def fold(items: Sequence[str], shown: int = 4) -> str:
    """A list in one line: the first few, then "… and N more"."""
    if len(items) <= shown:
        return ", ".join(items) or "nothing"
    return f"{', '.join(items[:shown])} … and {len(items) - shown} more"


def one_line(error: str) -> str:
    """An env's failure in one readable line: a wheels-only resolution's own answer ("numpy
    1.21.2 has no wheel for Python 3.12") without the request around it; else the first
    line, shortened."""
    if "no wheel for Python" in error:
        return error.rsplit("): ", 1)[-1]
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    raised = _RAISED.search(first)
    if "Traceback (most recent call last)" in first and raised:
        # A tool's traceback flattened into one line: what it said before, and what it raised.
        first = f"{first.split('Traceback', 1)[0].strip()} {raised.group(1)}"
    return short(first, 200)


_RAISED = re.compile(r"\b(\w+(?:Error|Exception|Exit)\b:? .*)$")


def fails_text(target: Comparison) -> str:
    """How "the failure shows" reads in steps and reasons, for a break or an output change."""
    return "fails the same way" if target.verdict == "broken" else "changes the same way"


def classify(
    target: Comparison, after_run: NotebookRun, probe: Comparison, run: NotebookRun
) -> tuple[Outcome, str]:
    """Whether the failure being blamed (`target`, shown by `after_run`) shows in a probe's
    `run`, compared with the running env's run as `probe`."""
    if probe.verdict not in FAILING:
        return "gone", "runs"
    if target.verdict == "broken":
        if probe.verdict == "changed":
            return "gone", f"runs, outputs differ in {_cells(probe)}"
        want, got = _failure(after_run), _failure(run)
        if got == want:
            return "same", f"fails the same way ({_error(run)})"
        if got[1] > want[1] >= 0:
            # The failing cell ran: this failure is gone, and a later one shows (worth
            # knowing: the notebook has more than one break).
            return "gone", f"gets past cell {want[1]}, then fails ({_error(run)})"
        return "other", f"fails differently ({_error(run)})"
    if probe.verdict == "changed":
        if {c.cell for c in probe.changes} == {c.cell for c in target.changes}:
            return "same", f"changes the same way ({_cells(probe)})"
        return "other", f"other outputs change ({_cells(probe)})"
    return "other", f"fails ({_error(run)})"


def _failure(run: NotebookRun) -> tuple[str, int, str]:
    cell = run.error.cell if run.error is not None else -1
    return run.status, cell, run.error.ename if run.error is not None else ""


def _error(run: NotebookRun) -> str:
    if run.error is None:
        return f"{run.status}: {short(run.reason or 'no reason given', 120)}"
    evalue = short(
        run.error.evalue.strip().splitlines()[0] if run.error.evalue.strip() else "", 120
    )
    return f"cell {run.error.cell}: {run.error.ename}" + (f": {evalue}" if evalue else "")


def _cells(comparison: Comparison) -> str:
    cells = sorted({change.cell for change in comparison.changes})
    return "cell " + ", ".join(str(cell) for cell in cells)


def short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
