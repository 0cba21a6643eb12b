"""Confirming the culprit of a broken or changed notebook by rebuilding environments.

search   which change the failure follows: a pure function over a Prober
probes   the real prober: probe envs built, the notebook run in each as the audit runs it
cache    finished blames on disk, keyed by the notebook and both env fingerprints
infer    the culprit the runs' evidence names (`inferred`), and the candidates ranked
hints    the fixes the libraries' own messages suggest
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from nbguard import compare
from nbguard.blame import cache, infer, search
from nbguard.blame.probes import FAILING, OutOfBudget, Probes, fails_text, lift_pins, variant
from nbguard.blame.search import PYTHON
from nbguard.envs.interpreters import Interpreter
from nbguard.model import Comparison, Culprit, EnvInfo, HiddenBreak, Notebook, NotebookRun
from nbguard.runner import Runner

__all__ = ["PYTHON", "BlameContext", "BlameResult", "confirm"]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class BlameContext:
    """What blaming notebooks of one env needs from the run around it."""

    runner: Runner  # runs each probe exactly as the audit ran the notebook; its backend builds
    interpreter: Interpreter  # the blamed env's: every probe env is built on it
    prerelease: bool  # the blamed env's policy, for resolving probe envs
    compare_options: compare.CompareOptions  # the run's (each notebook's own apply on top)
    cache_dir: Path  # finished blames are kept under cache_dir/blame
    progress: Callable[[str], None] = _quiet  # told each step as it happens
    # The baseline env's interpreter: probes on the old Python (a forced bump tried there).
    baseline_interpreter: Interpreter | None = None
    deadline: float | None = None  # time.monotonic() by which blame stops probing (budget)
    build_sdists: bool = False  # probes may build from source (blame-sdists); else wheels only
    budget_s: float | None = None  # the blame-budget setting, for the reason when it is spent
    stop: threading.Event | None = None  # set on Ctrl-C: no further probe starts
    # Held while a probe's notebook runs: blames outnumber them, so one blame's env is built
    # (resolver, downloads, links: mostly waiting) while another's kernel runs.
    kernels: threading.Semaphore | None = None


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
    hidden: tuple[HiddenBreak, ...] = ()  # later breaks the probes revealed

    @property
    def confirmed(self) -> bool:
        return self.culprit is not None and self.culprit.evidence == "confirmed"


def confirm(
    context: BlameContext,
    notebook: Notebook,
    before: EnvInfo,
    after: EnvInfo,
    before_run: NotebookRun,
    after_run: NotebookRun,
    inferred: Culprit | None,
    second: NotebookRun | None = None,
) -> BlameResult:
    """Confirm (or correct) the culprit of the notebook's failure in `after` by building envs
    between `before` and `after`, most likely candidates first, and rerunning the notebook.

    Only a pair of envs that differ in the culprit alone (the failure in one, not in the
    other) confirms it; when no probe can isolate it, the inferred culprit comes back with
    the reason why. `second`: the audit's own second run in `before` (volatile outputs),
    which tells a changed output from noise without running the notebook again. Results
    are cached by (notebook, both env fingerprints). Blocks; the caller stops the runner's
    kernels when it is interrupted.
    """
    started = time.monotonic()
    options = compare.options_for(notebook, context.compare_options)
    target = compare.compare_runs(before_run, after_run, options)
    unable = _cannot_blame(before, after, before_run, target)
    if unable is not None:
        return BlameResult(_not_confirmed(inferred, unable), 0, 0, 0.0, (unable,))

    cache_file = cache.path_for(context.cache_dir, notebook, before, after, options)
    stored = cache.load(cache_file)
    if stored is not None:
        return _from_cache(stored, inferred, time.monotonic() - started)

    ignored = infer.ignored(before, after)
    probes = Probes(
        context.runner,
        (context.baseline_interpreter, context.interpreter),
        context.prerelease,
        notebook,
        (before, after),
        (before_run, after_run),
        target,
        options,
        ignored,
        context.progress,
        build_sdists=context.build_sdists,
        deadline=context.deadline,
        stop=context.stop,
        kernels=context.kernels,
        second=second if second is not None and second.status == "ok" else None,
    )
    question = search.Question(
        before,
        after,
        infer.candidates(before, after, after_run, inferred),
        fails_text(target),
        ignored,
        (infer.imported_packages(before, before_run), infer.imported_packages(after, after_run)),
    )
    try:
        finding = search.find(question, probes)
    except OutOfBudget:
        # Not cached: with a budget left, a later blame may confirm it.
        why = f"blame budget of {_budget(context, started)} spent"
        probes.step(f"→ not confirmed: {why}")
        return BlameResult(
            _not_confirmed(inferred, why),
            probes.built,
            len(probes.used),
            time.monotonic() - started,
            tuple(probes.steps),
            _hidden(probes, before, after_run),
        )
    found = finding.culprit
    probes.step(f"→ {found.package} confirmed" if found else f"→ not confirmed: {finding.why_not}")
    result = BlameResult(
        culprit=found if found is not None else _not_confirmed(inferred, finding.why_not),
        envs_built=probes.built,
        envs_used=len(probes.used),
        seconds=time.monotonic() - started,
        steps=tuple(probes.steps),
        hidden=_hidden(probes, before, after_run),
    )
    cache.store(
        cache_file,
        cache.Stored(
            finding,
            result.envs_built,
            result.envs_used,
            result.seconds,
            result.steps,
            result.hidden,
        ),
    )
    return result


def lift_ahead(
    runner: Runner,
    interpreter: Interpreter,
    before: EnvInfo,
    after: EnvInfo,
    *,
    prerelease: bool,
    build_sdists: bool,
) -> None:
    """Build the probe env every blame of a Python move asks for first — `before`'s packages
    lifted to `after`'s Python — while the audit's kernels still run: each blame's first
    probe then finds it in the env cache instead of waiting seconds for a resolution and an
    install. Nothing when Python did not move (or an env is missing); a build that fails is
    the blames' to find and report."""
    if before.python == after.python or not (before.ok and after.ok):
        return
    variant(
        runner,
        after.name,
        interpreter,
        before,
        lift_pins(after),
        prerelease=prerelease,
        progress=_quiet,
        wheels_only=not build_sdists,
        lift=True,
    )


def _budget(context: BlameContext, started: float) -> str:
    if context.budget_s is not None:
        return f"{context.budget_s:g} s"
    return f"{time.monotonic() - started:.0f} s" if context.deadline is None else "its time"


def _hidden(probes: Probes, before: EnvInfo, after_run: NotebookRun) -> tuple[HiddenBreak, ...]:
    """The later breaks probes ran into once the first failure was gone, one per cell, each
    with the culprit its run's evidence names."""
    found: dict[int, HiddenBreak] = {}
    first = after_run.error.cell if after_run.error is not None else -1
    for label, env, run in probes.hidden:
        error = run.error
        if error is None or error.cell in found or error.cell <= first:
            continue
        comparison = Comparison(run.notebook, before.name, env.name, "broken")
        culprit = infer.infer(comparison, probes.before_run, run, before, env)
        lines = error.evalue.strip().splitlines()
        found[error.cell] = HiddenBreak(
            probes.after.name, error.cell, error.ename, lines[0] if lines else "", label, culprit
        )
    return tuple(found[cell] for cell in sorted(found))


def _cannot_blame(
    before: EnvInfo, after: EnvInfo, before_run: NotebookRun, target: Comparison
) -> str | None:
    if target.verdict not in FAILING:
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


def _from_cache(stored: cache.Stored, inferred: Culprit | None, elapsed: float) -> BlameResult:
    """A cached blame; an unconfirmed one hands back today's inferred culprit with the cached
    reason (inference may have improved since, the rebuilt envs have not changed)."""
    culprit = stored.finding.culprit or _not_confirmed(inferred, stored.finding.why_not)
    first = (
        f"answered from the blame cache (the first blame built {stored.envs_built} "
        f"env(s), ran {stored.envs_used} and took {stored.seconds} s)"
    )
    return BlameResult(culprit, 0, 0, elapsed, (first, *stored.steps), stored.hidden)
