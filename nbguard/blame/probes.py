"""The real prober: builds the envs blame's search asks for (variants of the two given envs),
runs the notebook in each exactly as the audit does, and says whether the failure shows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from nbguard import compare
from nbguard.blame.infer import KERNEL_MACHINERY
from nbguard.blame.search import Outcome, Seen
from nbguard.envs.interpreters import Interpreter
from nbguard.model import Comparison, EnvInfo, Notebook, NotebookRun
from nbguard.runner import Runner

FAILING = frozenset({"broken", "changed"})


class Probes:
    """A `search.Prober` over real envs. Remembers every outcome, by request and by env
    fingerprint (two requests may resolve to one env), and tells each probe as a step."""

    def __init__(
        self,
        runner: Runner,
        interpreter: Interpreter,
        prerelease: bool,
        notebook: Notebook,
        envs: tuple[EnvInfo, EnvInfo],
        runs: tuple[NotebookRun, NotebookRun],
        target: Comparison,
        options: compare.CompareOptions,
        ignored: frozenset[str],
        progress: Callable[[str], None],
    ) -> None:
        self.runner, self.interp, self.prerelease = runner, interpreter, prerelease
        self.notebook, self.target, self.options = notebook, target, options
        self.before, self.after = before, after = envs
        self.before_run, self.after_run = runs
        self.ignored, self.progress = ignored, progress
        self.fails = fails_text(target)
        assert before.fingerprint is not None and after.fingerprint is not None
        self.runs: dict[str, tuple[Outcome, str]] = {
            before.fingerprint: ("gone", f"runs (the env is {before.name} itself)"),
            after.fingerprint: ("same", f"{self.fails} (the env is {after.name} itself)"),
        }
        self.requests: dict[tuple[str, tuple[tuple[str, str], ...]], Seen] = {}
        self.built = 0  # probe envs newly built, not taken from the env cache
        self.used: set[str] = set()  # fingerprints of the probe envs the notebook ran in
        self.steps: list[str] = []

    def step(self, text: str) -> None:
        self.steps.append(text)
        self.progress(f"blame {self.notebook.path}: {text}")

    def revert(self, names: Sequence[str]) -> Seen:
        pins = {name: self.before.packages[name] for name in names}
        label = "revert " + ", ".join(
            f"{n} {self.after.packages.get(n, '(absent)')} → {v}" for n, v in pins.items()
        )
        return self._probe(label, "revert", self.after, pins)

    def upgrade(self, names: Sequence[str]) -> Seen:
        shown = ", ".join(
            f"{n} {self.before.packages[n]} → {self.after.packages.get(n, '(absent)')}"
            for n in names
        )
        label = f"from {self.before.name}, upgrade " + (shown or "nothing")
        if self._python_moved:
            label += f" (Python {self.after.python})"
        gone = [name for name in names if name not in self.after.packages]
        if gone:
            # "Not installed" cannot be pinned: a removal can only be reverted.
            detail = f"cannot be built: {', '.join(gone)} is not in {self.after.name}"
            return Seen(label, self.after.python, {}, "unbuilt", detail)
        pins = self._locked_pins() | {name: self.after.packages[name] for name in names}
        return self._probe(label, "upgrade", self.before, pins, asked=set(names))

    def python(self) -> Seen:
        label = f"{self.before.name} packages on Python {self.after.python}"
        return self._probe(label, "upgrade", self.before, self._locked_pins())

    @property
    def _python_moved(self) -> bool:
        return self.before.python != self.after.python

    def _locked_pins(self) -> dict[str, str]:
        # On another Python the locked versions are pinned exactly, so a version with no
        # wheel there fails the probe (and says so) instead of being swapped silently.
        if not self._python_moved:
            return {}
        return {n: v for n, v in self.before.packages.items() if n not in KERNEL_MACHINERY}

    def _probe(
        self,
        label: str,
        direction: str,
        base: EnvInfo,
        pins: Mapping[str, str],
        asked: set[str] | None = None,
    ) -> Seen:
        key = (direction, tuple(sorted(pins.items())))
        if key in self.requests:
            return self.requests[key]
        self.progress(f"blame {self.notebook.path}: {label}")
        env = self.runner.backend.build_variant(
            f"{self.after.name}-probe",
            self.interp,
            base,
            dict(pins),
            prerelease=self.prerelease,
            progress=self.progress,
        )
        if not env.ok or env.fingerprint is None:
            detail = f"cannot be built: {short(env.error or 'unknown error')}"
            seen = Seen(label, self.interp.version, {}, "unbuilt", detail)
            self.step(f"{label}: {detail}")
            self.requests[key] = seen
            return seen
        wanted = set(pins) if asked is None else asked
        moved = tuple(
            sorted(
                name
                for name in set(env.packages) | set(base.packages)
                if name not in wanted
                and name not in self.ignored
                and env.packages.get(name) != base.packages.get(name)
            )
        )
        if not env.reused:
            self.built += 1
        cost = "new env" if not env.reused else "env from the cache"
        if env.fingerprint in self.runs:
            outcome, detail = self.runs[env.fingerprint]
            cost = "already run"
        else:
            self.used.add(env.fingerprint)
            outcome, detail = self._run(env)
            self.runs[env.fingerprint] = (outcome, detail)
        seen = Seen(label, env.python, env.packages, outcome, detail, moved)
        self.requests[key] = seen
        along = ""
        if moved:
            shifts = [
                f"{n} {base.packages.get(n, '-')} → {env.packages.get(n, '-')}" for n in moved
            ]
            along = f" ({', '.join(shifts)} moved with it)"
        self.step(f"{label}{along}: {detail} [{cost}]")
        return seen

    def _run(self, env: EnvInfo) -> tuple[Outcome, str]:
        run = self.runner.run(self.notebook, env)
        if run.status == "env-failed":  # the course's own package cannot be installed there
            return "unbuilt", f"cannot be built: {run.reason}"
        if run.status == "internal-error":
            return "unbuilt", f"cannot be run: {run.reason}"
        probe = compare.compare_runs(self.before_run, run, self.options)
        return classify(self.target, self.after_run, probe, run)


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
