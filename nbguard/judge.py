"""One notebook's verdict from its runs: each env against the baseline, the culprit the
evidence names, the warnings that foretold a break, the fixes the libraries suggest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from nbguard import compare
from nbguard.blame import hints
from nbguard.blame.infer import infer
from nbguard.blame.search import PYTHON
from nbguard.compare import classify
from nbguard.envs import canonical
from nbguard.model import (
    Culprit,
    EnvInfo,
    Hint,
    Notebook,
    NotebookReport,
    NotebookRun,
    WarningRecord,
)


def judge(
    notebook: Notebook,
    runs: Mapping[str, NotebookRun],
    baseline_env: str,
    envs: Mapping[str, EnvInfo],
    options: compare.CompareOptions,
    reruns: Sequence[NotebookRun] = (),
) -> NotebookReport:
    """One notebook's verdict: each env's run against the baseline's, with the inferred
    culprit, the warnings that foreshadowed a break, and the fixes the libraries suggest.
    What differs between two runs of one env (`reruns`: second runs, in the baseline env and
    maybe others) is volatile: masked, and listed as such."""
    # Runs that failed for want of Colab or the network say so.
    runs = {name: classify.classified(run) for name, run in runs.items()}
    baseline = runs[baseline_env]
    options = compare.options_for(notebook, options)
    rerun = next((run for run in reruns if run.env == baseline_env), None)
    elsewhere = [(runs[r.env], r) for r in reruns if r.env != baseline_env and r.env in runs]
    volatile = compare.volatility(notebook, baseline, rerun, options, elsewhere)
    comparisons = []
    for name, other in runs.items():
        if name == baseline_env:
            continue
        compared = options
        if baseline_env in envs and name in envs:
            compared = replace(options, upgrades=_upgrades(envs[baseline_env], envs[name]))
        comparison = compare.compare_runs(baseline, other, compared, volatile)
        if comparison.verdict == "warnings" and not (
            _counted(baseline, options) or _counted(other, options)
        ):
            # Only library code warned: nothing the course can act on.
            comparison = replace(comparison, verdict="ok")
        if baseline_env in envs:  # no culprit against stored outputs: no env to compare
            blamed = infer(comparison, baseline, other, envs[baseline_env], envs[name])
            if blamed is not None:
                comparison = replace(comparison, culprit=blamed)
        comparisons.append(comparison)
    internal = next((run.internal for run in runs.values() if run.internal is not None), None)
    warned: list[WarningRecord] = []
    for comparison in comparisons:
        error = runs[comparison.env].error
        if comparison.verdict == "broken" and error is not None:
            package = comparison.culprit.package if comparison.culprit else None
            warned += hints.foreshadowing(error, baseline.warnings, package)
    return NotebookReport(
        notebook.path,
        compare.notebook_verdict(comparisons),
        runs,
        tuple(comparisons),
        foreshadowing=tuple(dict.fromkeys(warned)),
        hints=_hints(runs, next((c.culprit for c in comparisons if c.culprit), None), options),
        internal=internal,
        reruns=tuple(reruns),
    )


def _upgrades(baseline: EnvInfo, other: EnvInfo) -> tuple[tuple[str, str, str], ...]:
    """(package, baseline version, other version) of each package, and python, that moved."""
    moved = [
        (name, version, other.packages[name])
        for name, version in baseline.packages.items()
        if other.packages.get(name) not in (None, version)
    ]
    if baseline.python and other.python and baseline.python != other.python:
        moved.append((PYTHON, baseline.python, other.python))
    return tuple(moved)


def skipped(notebook: Notebook, env_names: list[str]) -> NotebookReport:
    runs = {
        name: NotebookRun(notebook.path, name, "skipped", 0.0, reason=notebook.skip_reason)
        for name in env_names
    }
    return NotebookReport(notebook.path, "skipped", runs, skip_reason=notebook.skip_reason)


def _counted(run: NotebookRun, options: compare.CompareOptions) -> tuple[WarningRecord, ...]:
    """The warnings that speak to the course: those pointing at its own code, or every one
    when the settings count library warnings too."""
    if options.library_warnings:
        return run.warnings
    return tuple(record for record in run.warnings if record.origin == "course")


def _hints(
    runs: dict[str, NotebookRun], culprit: Culprit | None, options: compare.CompareOptions
) -> tuple[Hint, ...]:
    """The fixes the libraries' own messages suggest: errors first, then the warnings the
    course's code triggered. A hint belongs to the message it came from and to that message's
    package: with a culprit, a warning's hint shows only when the culprit emitted it (numpy's
    `np.float` advice is no fix for a seaborn break)."""
    found: list[Hint] = []
    for run in runs.values():
        for error in (run.error, *run.later_errors):
            hint = hints.fix_hint(error.evalue) if error else None
            if error and hint:
                found.append(Hint(error.cell, hint, error.ename, _detail(error.evalue)))
    for run in runs.values():
        for record in _counted(run, options):
            if culprit is not None and not _same_package(record, culprit):
                continue
            hint = hints.fix_hint(record.message)
            if hint:
                source = (
                    f"{record.category} ({record.package})" if record.package else record.category
                )
                found.append(Hint(record.cell, hint, source, _detail(record.message)))
    # The same advice for the same cell once: the error's, not again the warning's that
    # foretold it.
    unique: dict[tuple[int, str], Hint] = {}
    for each in found:
        unique.setdefault((each.cell, each.hint), each)
    return tuple(unique.values())


def _same_package(record: WarningRecord, culprit: Culprit) -> bool:
    if record.package is None:  # the standard library's own warnings: Python's
        return culprit.package == PYTHON
    return canonical(record.package) == canonical(culprit.package)


def _detail(message: str) -> str | None:
    """The whole message behind a hint, when its one line leaves something out."""
    full = message.strip()
    return full if hints.first_sentence(full) != full else None
