"""Confirming the culprit of a broken or changed notebook by rebuilding environments."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from nbguard import compare, envs, execute, runspec
from nbguard.blame.infer import KERNEL_MACHINERY, module_owners
from nbguard.envs.interpreters import Interpreter
from nbguard.model import Comparison, Culprit, EnvInfo, Notebook, NotebookRun
from nbguard.settings import Config

__all__ = ["PYTHON", "BlameResult", "confirm"]

# Bump when what a cached blame means changes.
_FORMAT = "nbguard-blame/1"
PYTHON = "python"  # the candidate that stands for the interpreter itself
_FAILING = frozenset({"broken", "changed"})
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# What one probe env showed, measured against the failure being blamed: `same` the failure
# reproduces, `gone` it does not (the notebook runs, or gets past the failing cell), `other`
# it fails in another way that hides the answer, `unbuilt` the env could not be built.
Outcome = Literal["same", "gone", "other", "unbuilt"]


@dataclass(frozen=True)
class BlameResult:
    """What one blame found, and what finding it cost."""

    # Evidence "confirmed" when rebuilt envs isolated it; otherwise the inferred culprit (or
    # None), its reason saying why it could not be confirmed.
    culprit: Culprit | None
    envs_built: int  # probe envs newly built (not reused from the env cache)
    envs_used: int  # probe envs the notebook ran in, built or reused (the two given ones aside)
    seconds: float
    steps: tuple[str, ...]  # "revert numpy 2.1.0 → 1.26.4: runs → numpy confirmed"

    @property
    def confirmed(self) -> bool:
        return self.culprit is not None and self.culprit.evidence == "confirmed"


def confirm(
    config: Config,
    notebook: Notebook,
    before: EnvInfo,
    after: EnvInfo,
    before_run: NotebookRun,
    after_run: NotebookRun,
    inferred: Culprit | None,
    progress: Callable[[str], None] = lambda _: None,
) -> BlameResult:
    """Confirm (or correct) the culprit of the notebook's failure in `after` by building envs
    between `before` and `after`, most likely candidates first, and rerunning the notebook.

    Only a pair of envs that differ in the culprit alone (the failure in one, not in the
    other) confirms it; when no probe can isolate it, the inferred culprit comes back with
    the reason why. Results are cached by (notebook, both env fingerprints). Blocks; kernels
    are stopped like the pipeline's (execute.kill_all_kernels) when the caller is interrupted.
    """
    started = time.monotonic()
    options = compare.options_for(notebook, runspec.compare_options(config))
    target = compare.compare_runs(before_run, after_run, options)
    unable = _cannot_blame(before, after, before_run, target)
    if unable is not None:
        return BlameResult(_not_confirmed(inferred, unable), 0, 0, 0.0, (unable,))

    cache_file = config.cache_dir / "blame" / f"{_cache_key(notebook, before, after, options)}.json"
    cached = _load(cache_file, inferred, time.monotonic() - started)
    if cached is not None:
        return cached

    scratch = Path(tempfile.mkdtemp(prefix="nbguard-blame-"))
    try:
        probes = _Probes(
            config, notebook, (before, after), (before_run, after_run), target, options
        )
        probes.scratch, probes.progress = scratch, progress
        found, why = _search(probes, _candidates(before, after, after_run, inferred))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if found is not None:
        probes.step(f"→ {found.package} confirmed")
    else:
        probes.step(f"→ not confirmed: {why}")
    result = BlameResult(
        culprit=found if found is not None else _not_confirmed(inferred, why),
        envs_built=probes.built,
        envs_used=len(probes.used),
        seconds=time.monotonic() - started,
        steps=tuple(probes.steps),
    )
    _store(cache_file, result, why)
    return result


def _cannot_blame(
    before: EnvInfo, after: EnvInfo, before_run: NotebookRun, target: Comparison
) -> str | None:
    if target.verdict not in _FAILING:
        return f"nothing to blame: the notebook is {target.verdict} in {after.name}"
    if not (before.ok and after.ok) or before.fingerprint is None or after.fingerprint is None:
        return f"cannot rebuild: env {before.name if not before.ok else after.name} was not built"
    if before_run.failed:
        return f"cannot bisect: the notebook fails in {before.name} too"
    return None


def _not_confirmed(inferred: Culprit | None, why: str) -> Culprit | None:
    if inferred is None:
        return None
    reason = f"{inferred.reason}; not confirmed: {why}" if inferred.reason else why
    return replace(inferred, evidence="inferred", reason=reason)


# --- candidates ----------------------------------------------------------------------------


def _candidates(
    before: EnvInfo, after: EnvInfo, after_run: NotebookRun, inferred: Culprit | None
) -> list[str]:
    """What may have broken the notebook, most likely first: the inferred culprit, packages
    the failing run names (traceback, error, warnings), the other changed packages, Python.

    A package new in `after` is no candidate: "not installed" cannot be pinned, and it moves
    with whatever brought it in. ipykernel's machinery counts only when nothing else moved.
    """
    ignored = _ignored(before, after)
    changed = [name for name, old, _ in envs.changed_packages(before, after) if old is not None]
    packages = [name for name in changed if name not in ignored]
    python = [PYTHON] if before.python != after.python else []
    owners = module_owners(after)
    named = {owners.get(m, envs.canonical(m)) for m in _mentioned_modules(after_run)}
    named |= {envs.canonical(w.package) for w in after_run.warnings if w.package}
    ranked = sorted(packages, key=lambda name: (name not in named, name))
    ordered = [*ranked, *python]
    if inferred is not None and inferred.package in ordered:
        ordered.remove(inferred.package)
        ordered.insert(0, inferred.package)
    return ordered


def _mentioned_modules(run: NotebookRun) -> set[str]:
    """Top-level module names in the failing run's traceback and error message."""
    if run.error is None:
        return set()
    text = "\n".join([*run.error.traceback, run.error.evalue])
    # Every identifier: ranking only decides which probe comes first, so a word that happens
    # to name a package costs one probe at worst.
    return set(_IDENTIFIER.findall(_ANSI.sub("", text)))


# --- probes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    """One env the notebook ran in (or could not be built) and what that showed."""

    python: str | None
    packages: Mapping[str, str]
    outcome: Outcome
    detail: str
    # Packages that moved besides the ones asked for (the resolver had to move them along).
    moved: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return self.outcome != "unbuilt" and not self.moved


class _Probes:
    """Builds the envs one blame asks for, runs the notebook in each, and remembers every
    outcome, by request and by env fingerprint (two requests may resolve to one env)."""

    def __init__(
        self,
        config: Config,
        notebook: Notebook,
        env_pair: tuple[EnvInfo, EnvInfo],
        run_pair: tuple[NotebookRun, NotebookRun],
        target: Comparison,
        options: compare.CompareOptions,
    ) -> None:
        self.config, self.notebook, self.target, self.options = config, notebook, target, options
        # How "the failure shows" reads in steps and reasons, for a break or an output change.
        self.fails = "fails the same way" if target.verdict == "broken" else "changes the same way"
        self.before, self.after = before, after = env_pair
        self.before_run, self.after_run = run_pair
        spec = config.env(after.name)
        self.interp: Interpreter = envs.interpreter_for(spec)
        self.prerelease = spec.prerelease
        self.ignored = _ignored(before, after)
        # Set by confirm: where probe runs work, who hears about each step.
        self.scratch = Path(tempfile.gettempdir())
        self.progress: Callable[[str], None] = lambda _: None
        self.locked = _Seen(before.python, before.packages, "gone", f"runs in {before.name}")
        self.upcoming = _Seen(after.python, after.packages, "same", f"fails in {after.name}")
        self.seen: list[_Seen] = [self.locked, self.upcoming]
        assert before.fingerprint is not None and after.fingerprint is not None
        self.runs: dict[str, tuple[Outcome, str]] = {
            before.fingerprint: ("gone", f"runs (the env is {before.name} itself)"),
            after.fingerprint: ("same", f"{self.fails} (the env is {after.name} itself)"),
        }
        self.requests: dict[tuple[str, tuple[tuple[str, str], ...]], _Seen] = {}
        self.built = 0
        self.used: set[str] = set()
        self.steps: list[str] = []
        self.notes: list[str] = []  # why probes could not answer, for a fallback's reason
        self.python_probed: _Seen | None = None

    def step(self, text: str) -> None:
        self.steps.append(text)
        self.progress(f"blame {self.notebook.path}: {text}")

    def revert(self, names: Sequence[str]) -> _Seen:
        """The upcoming env with `names` back at their locked versions."""
        pins = {name: self.before.packages[name] for name in names}
        label = "revert " + ", ".join(
            f"{n} {self.after.packages.get(n, '(absent)')} → {v}" for n, v in pins.items()
        )
        return self._probe(label, "revert", self.after, pins)

    def upgrade(self, names: Sequence[str]) -> _Seen:
        """The locked packages (on the upcoming Python) with `names` at upcoming versions."""
        gone = [name for name in names if name not in self.after.packages]
        if gone:
            # "Not installed" cannot be pinned: a removal can only be reverted.
            detail = f"cannot be built: {', '.join(gone)} is not in {self.after.name}"
            return _Seen(self.after.python, {}, "unbuilt", detail)
        pins = self._locked_pins() | {name: self.after.packages[name] for name in names}
        shown = ", ".join(
            f"{n} {self.before.packages[n]} → {self.after.packages[n]}" for n in names
        )
        label = f"from {self.before.name}, upgrade " + (shown or "nothing")
        if self.python_moved:
            label += f" (Python {self.after.python})"
        return self._probe(label, "upgrade", self.before, pins, asked=set(names))

    def python(self) -> _Seen:
        """The locked packages, pinned exactly, on the upcoming Python."""
        if self.python_probed is None:
            label = f"{self.before.name} packages on Python {self.after.python}"
            self.python_probed = self._probe(label, "upgrade", self.before, self._locked_pins())
        return self.python_probed

    @property
    def python_moved(self) -> bool:
        return self.before.python != self.after.python

    def _locked_pins(self) -> dict[str, str]:
        # On another Python the locked versions are pinned exactly, so a version with no
        # wheel there fails the probe (and says so) instead of being swapped silently.
        if not self.python_moved:
            return {}
        return {n: v for n, v in self.before.packages.items() if n not in KERNEL_MACHINERY}

    def _probe(
        self,
        label: str,
        direction: str,
        base: EnvInfo,
        pins: Mapping[str, str],
        asked: set[str] | None = None,
    ) -> _Seen:
        key = (direction, tuple(sorted(pins.items())))
        if key in self.requests:
            return self.requests[key]
        self.progress(f"blame {self.notebook.path}: {label}")
        env = envs.build_variant(
            f"{self.after.name}-probe",
            self.interp,
            base,
            pins,
            runspec.build_options(self.config),
            prerelease=self.prerelease,
            progress=self.progress,
        )
        if not env.ok or env.fingerprint is None:
            detail = f"cannot be built: {_short(env.error or 'unknown error')}"
            seen = _Seen(self.interp.version, {}, "unbuilt", detail)
            self.notes.append(f"{label}: {detail}")
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
        seen = _Seen(env.python, env.packages, outcome, detail, moved)
        self.seen.append(seen)
        self.requests[key] = seen
        along = ""
        if moved:
            shifts = [
                f"{n} {base.packages.get(n, '-')} → {env.packages.get(n, '-')}" for n in moved
            ]
            along = f" ({', '.join(shifts)} moved with it)"
        self.step(f"{label}{along}: {detail} [{cost}]")
        if moved and outcome != "unbuilt":
            self.notes.append(f"{label} also moves {', '.join(moved)}")
        return seen

    def _run(self, env: EnvInfo) -> tuple[Outcome, str]:
        assert env.interpreter is not None and env.fingerprint is not None
        workdir = self.scratch / env.fingerprint[:12]
        site = self._course_site(env, workdir)
        if isinstance(site, str):
            return "unbuilt", f"cannot be built: {site}"
        run = execute.execute_notebook(
            self.notebook,
            self.config.course,
            env.name,
            env.interpreter,
            runspec.kernel_options(runspec.exec_options(self.config), env.interpreter, site),
            workdir / "run",
        )
        return _classify(
            self.target,
            self.after_run,
            compare.compare_runs(self.before_run, run, self.options),
            run,
        )

    def _course_site(self, env: EnvInfo, workdir: Path) -> Path | str | None:
        """The course's own package installed for this env's kernels (course-code = install),
        as the pipeline does; the reason when it cannot be installed."""
        if self.config.course_code != "install":
            return None
        source = self.scratch / "course-source"
        if not source.exists():
            options = runspec.exec_options(self.config)
            execute.copy_course(self.config.course, source, options.copy_ignore, self.scratch)
        site = workdir / "course-site"
        error = envs.install_course(runspec.build_options(self.config), env, source, site)
        return error if error else site


def _ignored(before: EnvInfo, after: EnvInfo) -> frozenset[str]:
    """ipykernel's machinery, unless it is all that changed (Python included): then it is
    what gets blamed."""
    changed = {name for name, _, _ in envs.changed_packages(before, after)}
    if changed - KERNEL_MACHINERY or before.python != after.python:
        return KERNEL_MACHINERY
    return frozenset()


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- outcomes ------------------------------------------------------------------------------


def _classify(
    target: Comparison, after_run: NotebookRun, probe: Comparison, run: NotebookRun
) -> tuple[Outcome, str]:
    """Whether the failure being blamed shows in a probe's run."""
    if probe.verdict not in _FAILING:
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
        return f"{run.status}: {_short(run.reason or 'no reason given', 120)}"
    evalue = _short(
        run.error.evalue.strip().splitlines()[0] if run.error.evalue.strip() else "", 120
    )
    return f"cell {run.error.cell}: {run.error.ename}" + (f": {evalue}" if evalue else "")


def _cells(comparison: Comparison) -> str:
    cells = sorted({change.cell for change in comparison.changes})
    return "cell " + ", ".join(str(cell) for cell in cells)


# --- the search ----------------------------------------------------------------------------


def _search(probes: _Probes, candidates: list[str]) -> tuple[Culprit | None, str]:
    """Probe until a pair of envs differing in one candidate (or a minimal group) shows the
    failure in one and not the other; (culprit, "") or (None, why not)."""
    if not candidates:
        return None, "no package changed between the envs"
    packages = [c for c in candidates if c != PYTHON]
    if candidates[0] != PYTHON:
        probes.revert([candidates[0]])
    if probes.python_moved:
        # The locked packages on the new Python: either Python alone breaks the notebook
        # (the cleanest answer there is, so it wins), or that env is where upgrading
        # packages one by one starts.
        found = _python(probes)
        if found is not None:
            return found, ""
    group: tuple[str, ...] = ()
    if not _pairs(probes, packages) and len(packages) > 1:
        group = _minimal_revert(probes, packages)
    pairs = _pairs(probes, packages)
    if pairs:
        name = next(iter(pairs))
        return _single(probes, name, pairs[name], packages), ""
    if group:
        return _group(probes, group, "revert"), ""
    return None, _why_not(probes, candidates)


def _python(probes: _Probes) -> Culprit | None:
    seen = probes.python()
    if seen.outcome != "same" or seen.moved:
        return None
    before, after = probes.before, probes.after
    reason = (
        f"rebuilt: the {before.name} packages on Python {after.python} {probes.fails}, "
        f"on Python {before.python} they run"
    )
    return Culprit(PYTHON, before.python, after.python, "confirmed", reason)


def _diff(a: _Seen, b: _Seen, ignored: frozenset[str]) -> set[str]:
    names = {
        name
        for name in set(a.packages) | set(b.packages)
        if name not in ignored and a.packages.get(name) != b.packages.get(name)
    }
    return names | ({PYTHON} if a.python != b.python else set())


def _pairs(probes: _Probes, packages: Sequence[str]) -> dict[str, _Seen]:
    """Packages isolated by a pair of observed envs — failing the same way with the package
    at one version, running with it at the other, nothing else different but ipykernel's
    machinery — in candidate order, each with the failing env of its pair."""
    found: dict[str, _Seen] = {}
    failing = [s for s in probes.seen if s.outcome == "same"]
    running = [s for s in probes.seen if s.outcome == "gone"]
    for bad in failing:
        for good in running:
            diff = _diff(bad, good, probes.ignored)
            if len(diff) == 1 and diff <= set(packages):
                found.setdefault(next(iter(diff)), bad)
    return {name: found[name] for name in packages if name in found}


def _single(probes: _Probes, name: str, failing: _Seen, packages: Sequence[str]) -> Culprit:
    """`name` isolated by a pair of envs; upgrading it alone from the locked env tells
    whether it breaks the notebook by itself or together with other upgrades."""
    before, after = probes.before, probes.after
    old, new = before.packages[name], after.packages.get(name)
    context = sorted(_diff(failing, probes.upcoming, probes.ignored) - {name, PYTHON})
    where = f"everything else as in {after.name}"
    if context:
        shown = ", ".join(f"{n} {failing.packages.get(n, '(absent)')}" for n in context)
        where += f" but {shown}"
    isolated = f"envs that differ only in {name} ({where}): {old} runs, {new} {probes.fails}"
    if probes.python_moved and probes.python().outcome != "gone":
        tail = f"upgrading {name} alone cannot be tried ({probes.python().detail})"
        return Culprit(name, old, new, "confirmed", f"{isolated}; {tail}")
    alone = probes.upgrade([name])
    if alone.outcome == "same" and alone.clean:
        tail = f"upgrading only {name} from {before.name} {probes.fails} too"
    elif alone.outcome == "same":
        moved = ", ".join(alone.moved)
        tail = f"upgrading {name} from {before.name} (which moves {moved} too) {probes.fails}"
    elif alone.outcome == "gone" and alone.clean:
        group = _minimal_upgrade(probes, [name, *(p for p in packages if p != name)])
        if len(group) > 1:
            return _group(probes, group, "upgrade")
        tail = (
            f"upgrading only {name} from {before.name} runs: it breaks together with other upgrades"
        )
    else:
        tail = f"upgrading only {name} from {before.name}: {alone.detail}"
    return Culprit(name, old, new, "confirmed", f"{isolated}; {tail}")


def _minimal_revert(probes: _Probes, packages: Sequence[str]) -> tuple[str, ...]:
    """The smallest group of packages whose revert (together, and nothing else moving) makes
    the failure go; () unless that was shown to be minimal."""
    everything = probes.revert(packages)
    if not (everything.outcome == "gone" and everything.clean):
        return ()

    def holds(names: tuple[str, ...]) -> bool | None:
        seen = probes.revert(names)
        if seen.outcome == "gone":
            return True if seen.clean else None
        return False if seen.outcome == "same" and seen.clean else None

    group, minimal = _minimize(tuple(packages), holds)
    return group if minimal and len(group) > 1 else ()


def _minimal_upgrade(probes: _Probes, packages: Sequence[str]) -> tuple[str, ...]:
    """The smallest group of packages whose upgrade from the locked env (together, nothing
    else moving) reproduces the failure; () unless that was shown to be minimal."""
    if probes.python_moved and probes.python().outcome != "gone":
        return ()
    everything = probes.upgrade(packages)
    if not (everything.outcome == "same" and everything.clean):
        return ()

    def holds(names: tuple[str, ...]) -> bool | None:
        seen = probes.upgrade(names)
        if seen.outcome == "same":
            return True if seen.clean else None
        return False if seen.outcome == "gone" and seen.clean else None

    group, minimal = _minimize(tuple(packages), holds)
    return group if minimal and len(group) > 1 else ()


def _minimize(
    items: tuple[str, ...], holds: Callable[[tuple[str, ...]], bool | None]
) -> tuple[tuple[str, ...], bool]:
    """Delta debugging (Zeller's ddmin, reducing to complements): a subset of `items`, which
    must hold, that still holds; and whether it is minimal — every subset one smaller was
    tried and answered False (None: the probe could not tell). One failing candidate among n
    takes about log2(n) probes, as bisection does."""
    current, chunks = items, 2
    while len(current) > 1:
        size = -(-len(current) // chunks)  # ceiling: no empty chunk
        parts = [current[i : i + size] for i in range(0, len(current), size)]
        answers: list[bool | None] = []
        for part in parts:
            rest = tuple(name for name in current if name not in part)
            answer = holds(rest)
            if answer:
                current, chunks = rest, max(chunks - 1, 2)
                break
            answers.append(answer)
        else:
            if chunks >= len(current):
                return current, all(answer is False for answer in answers)
            chunks = min(chunks * 2, len(current))
    # One left: the empty revert (or upgrade) is the failing (or running) env given.
    return current, True


def _group(probes: _Probes, group: tuple[str, ...], direction: str) -> Culprit:
    names = sorted(group)
    before, after = probes.before.packages, probes.after.packages
    joined = " and ".join(names)
    if direction == "upgrade":
        reason = (
            f"{joined} break together: upgrading all of them from {probes.before.name} "
            f"{probes.fails}, leaving any one at its {probes.before.name} version runs"
        )
    else:
        together = probes.upgrade(names)
        reason = (
            f"reverting {joined} together makes the failure go, reverting any one alone does "
            f"not; upgrading only them from {probes.before.name}: {together.detail}"
        )
    return Culprit(
        " + ".join(names),
        " + ".join(before[n] for n in names),
        " + ".join(after.get(n, "(absent)") for n in names),
        "confirmed",
        f"rebuilt: {reason}",
    )


def _why_not(probes: _Probes, candidates: Sequence[str]) -> str:
    if probes.notes:
        return "; ".join(dict.fromkeys(probes.notes))
    return (
        f"no rebuilt env isolated one change among {', '.join(candidates)} "
        "(each probe still showed the failure, or failed differently)"
    )


# --- the blame cache -------------------------------------------------------------------------


def _cache_key(
    notebook: Notebook, before: EnvInfo, after: EnvInfo, options: compare.CompareOptions
) -> str:
    # The comparison settings decide what "the failure is gone" means, so they key it too.
    parts = [_FORMAT, notebook.sha256, before.fingerprint, after.fingerprint]
    parts += [repr(options.tolerance), repr(options.replacements), repr(options.image_threshold)]
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:24]


def _store(path: Path, result: BlameResult, why: str) -> None:
    found = result.culprit if result.confirmed else None
    data = {
        "format": _FORMAT,
        "culprit": found.to_json() if found is not None else None,
        "why_not": why,
        "envs_built": result.envs_built,
        "envs_used": result.envs_used,
        "seconds": round(result.seconds, 2),
        "steps": list(result.steps),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed: a concurrent blame reads the old file or the new, whole.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def _load(path: Path, inferred: Culprit | None, elapsed: float) -> BlameResult | None:
    """A cached blame; an unconfirmed one hands back today's inferred culprit with the cached
    reason (inference may have improved since, the rebuilt envs have not changed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    raw = data.get("culprit")
    if isinstance(raw, dict):
        culprit: Culprit | None = Culprit(
            str(raw["package"]), raw.get("from"), raw.get("to"), "confirmed", str(raw["reason"])
        )
    else:
        culprit = _not_confirmed(inferred, str(data.get("why_not", "")))
    first = (
        f"answered from the blame cache (the first blame built {data.get('envs_built')} "
        f"env(s), ran {data.get('envs_used')} and took {data.get('seconds')} s)"
    )
    steps = tuple(str(step) for step in data.get("steps", []))
    return BlameResult(culprit, 0, 0, elapsed, (first, *steps))
