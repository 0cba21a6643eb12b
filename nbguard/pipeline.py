"""The orchestrator: config → notebooks and envs → runs → comparisons → report."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from nbguard import blame, compare, discover, envs, execute, proc, runspec
from nbguard.blame import hints
from nbguard.blame import infer as culprit
from nbguard.compare import classify
from nbguard.envs.interpreters import Interpreter
from nbguard.errors import ConfigError
from nbguard.model import (
    BlameCost,
    EnvInfo,
    Hint,
    Notebook,
    NotebookReport,
    NotebookRun,
    Report,
    WarningRecord,
)
from nbguard.settings import ALWAYS_EXCLUDED, Config


class Terminated(BaseException):
    """SIGTERM arrived: stop like on Ctrl-C, with the finished part of the report."""


class Observer(Protocol):
    """What the pipeline tells whoever draws progress (the terminal, or nothing)."""

    def planned(self, notebooks: int, runs: int, envs: list[str]) -> None: ...
    def env_step(self, env: str, text: str) -> None: ...
    def env_ready(self, info: EnvInfo) -> None: ...
    def run_started(self, notebook: str, env: str) -> None: ...
    def run_finished(self, run: NotebookRun) -> None: ...
    def note(self, text: str) -> None: ...


class Silent:
    def planned(self, notebooks: int, runs: int, envs: list[str]) -> None:
        pass

    def env_step(self, env: str, text: str) -> None:
        pass

    def env_ready(self, info: EnvInfo) -> None:
        pass

    def run_started(self, notebook: str, env: str) -> None:
        pass

    def run_finished(self, run: NotebookRun) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class _Task:
    notebook: Notebook
    env: EnvInfo


def run(config: Config, observer: Observer | None = None) -> Report:
    """Execute every notebook in every env and compare each env's runs with the baseline's.

    Infrastructure problems that stop everything (no interpreter, bad config) raise
    NbguardError before any kernel starts; on Ctrl-C / SIGTERM the notebooks that finished in
    every env are reported and `Report.interrupted` is set.
    """
    seen = observer or Silent()
    started = time.monotonic()
    if config.offline:
        # Said once, up front, rather than as a kernel that cannot start in every notebook.
        probe = proc.run(["unshare", "--net", "--", "true"], timeout=30)
        if not probe.ok:
            raise ConfigError(
                "--offline needs Linux network namespaces (unshare --net), which this machine "
                f"does not allow: {probe.last_lines(1) or 'unshare failed'}"
            )
    # Look up every interpreter first: a missing Python is a setup error, before any work.
    interps = {spec.name: envs.interpreter_for(spec) for spec in config.envs}
    notebooks = discover.discover(config.course, config.notebooks, config.exclude, ALWAYS_EXCLUDED)
    if not notebooks:
        # A CI job that silently checks nothing is worse than one that fails.
        raise ConfigError(
            f"no notebooks in {config.course} match notebooks={list(config.notebooks)} "
            f"(exclude={list(config.exclude)}); check the globs"
        )
    runnable = [nb for nb in notebooks if nb.skip_reason is None]
    seen.planned(len(notebooks), len(runnable) * len(config.envs), [s.name for s in config.envs])

    scratch = Path(tempfile.mkdtemp(prefix="nbguard-"))
    built: dict[str, EnvInfo] = {}
    runs: dict[tuple[str, str], NotebookRun] = {}
    interrupted = False
    try:
        _execute_all(config, interps, runnable, scratch, seen, built, runs)
    except (KeyboardInterrupt, Terminated):
        interrupted = True
    finally:
        execute.kill_all_kernels()
        shutil.rmtree(scratch, ignore_errors=True)

    env_names = [spec.name for spec in config.envs]
    if config.baseline == execute.STORED and not interrupted:
        # The outputs saved in each notebook stand in for a baseline env's run.
        env_names.insert(0, execute.STORED)
        for notebook in runnable:
            runs[(notebook.path, execute.STORED)] = execute.stored_run(notebook, config.course)
    reports: list[NotebookReport] = []
    for notebook in notebooks:
        if notebook.skip_reason is not None:
            reports.append(_skipped(notebook, env_names))
            continue
        nb_runs = {
            name: runs[(notebook.path, name)] for name in env_names if (notebook.path, name) in runs
        }
        if len(nb_runs) < len(env_names):
            continue  # interrupted before every env ran it: nothing to compare
        reports.append(_compare(config, notebook, nb_runs, built))
    cost = None
    if config.blame and not interrupted and config.baseline in built:
        try:
            reports, cost = _confirm_culprits(config, notebooks, reports, built, seen)
        except (KeyboardInterrupt, Terminated):
            interrupted = True
        finally:
            execute.kill_all_kernels()
    return Report(
        course=str(config.course),
        baseline=config.baseline,
        envs={name: built[name] for name in env_names if name in built},
        notebooks=tuple(reports),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=time.monotonic() - started,
        interrupted=interrupted,
        settings=config.public(),
        blame=cost,
    )


def _confirm_culprits(
    config: Config,
    notebooks: tuple[Notebook, ...],
    reports: list[NotebookReport],
    built: dict[str, EnvInfo],
    seen: Observer,
) -> tuple[list[NotebookReport], BlameCost]:
    """Each broken or changed notebook's culprit, confirmed by rebuilt envs where possible."""
    by_path = {notebook.path: notebook for notebook in notebooks}
    wanted = sum(nb.verdict in {"broken", "changed"} for nb in reports)
    if wanted:
        seen.note(f"confirming the culprits of {wanted} notebooks by rebuilding envs…")
    confirmed: list[NotebookReport] = []
    built_count = used = 0
    seconds = 0.0
    steps: dict[str, tuple[str, ...]] = {}
    for nb in reports:
        comparisons = []
        for comparison in nb.comparisons:
            if comparison.verdict not in {"broken", "changed"} or comparison.env not in built:
                comparisons.append(comparison)
                continue
            result = blame.confirm(
                config,
                by_path[nb.path],
                built[config.baseline],
                built[comparison.env],
                nb.runs[config.baseline],
                nb.runs[comparison.env],
                comparison.culprit,
                seen.note,
            )
            built_count += result.envs_built
            used += result.envs_used
            seconds += result.seconds
            steps[nb.path] = result.steps
            comparisons.append(replace(comparison, culprit=result.culprit))
        confirmed.append(replace(nb, comparisons=tuple(comparisons)))
    return confirmed, BlameCost(len(steps), built_count, used, seconds, steps)


def _execute_all(
    config: Config,
    interps: dict[str, Interpreter],
    notebooks: list[Notebook],
    scratch: Path,
    seen: Observer,
    built: dict[str, EnvInfo],
    runs: dict[tuple[str, str], NotebookRun],
) -> None:
    """Build the envs side by side and start each env's notebooks as soon as it is ready,
    so the first env's kernels run while the second still installs."""
    options = runspec.exec_options(config)
    cancel = threading.Event()

    course_source = scratch / "course-source"
    copied = threading.Lock()
    site_paths: dict[str, Path] = {}

    def build(name: str) -> EnvInfo:
        spec = config.env(name)
        info = envs.build(
            spec,
            runspec.build_options(config),
            interps[name],
            lambda text: seen.env_step(name, text),
        )
        if config.course_code != "install" or not info.ok:
            return info
        seen.env_step(name, "installing the course's package")
        with copied:
            if not course_source.exists():
                execute.copy_course(config.course, course_source, options.copy_ignore, scratch)
        site = scratch / "course-site" / name
        error = envs.install_course(runspec.build_options(config), info, course_source, site)
        if error:
            return replace(info, error=error)
        site_paths[name] = site
        return info

    def execute_one(task: _Task, workdir: Path) -> NotebookRun:
        if cancel.is_set():
            raise KeyboardInterrupt
        seen.run_started(task.notebook.path, task.env.name)
        assert task.env.interpreter is not None
        kernel = runspec.kernel_options(
            options, task.env.interpreter, site_paths.get(task.env.name)
        )
        return execute.execute_notebook(
            task.notebook,
            config.course,
            task.env.name,
            task.env.interpreter,
            own_pip_target(kernel, workdir),
            workdir,
        )

    with (
        ThreadPoolExecutor(max_workers=len(config.envs), thread_name_prefix="env") as builders,
        ThreadPoolExecutor(max_workers=config.jobs, thread_name_prefix="kernel") as workers,
    ):
        pending: set[Future[object]] = {builders.submit(build, spec.name) for spec in config.envs}
        counter = 0
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    if isinstance(result, EnvInfo):
                        built[result.name] = result
                        seen.env_ready(result)
                        for notebook in notebooks:
                            if not result.ok:
                                run_ = _env_failed(notebook, result)
                                runs[(notebook.path, result.name)] = run_
                                seen.run_finished(run_)
                                continue
                            counter += 1
                            workdir = scratch / result.name / str(counter)
                            pending.add(
                                workers.submit(execute_one, _Task(notebook, result), workdir)
                            )
                    elif isinstance(result, NotebookRun):
                        runs[(result.notebook, result.env)] = result
                        seen.run_finished(result)
        except BaseException:
            cancel.set()
            for future in pending:
                future.cancel()
            execute.kill_all_kernels()
            raise


def own_pip_target(options: execute.ExecOptions, workdir: Path) -> execute.ExecOptions:
    """A notebook's `%pip install` / `!pip install` goes to a folder of its own run (PIP_TARGET,
    first on its kernel's path), so it sees what it installed and the cached env that other
    notebooks share never changes."""
    target = workdir.resolve() / "pip-target"
    return replace(
        options,
        kernel_env={**options.kernel_env, "PIP_TARGET": str(target)},
        python_path=(target, *options.python_path),
    )


def _env_failed(notebook: Notebook, env: EnvInfo) -> NotebookRun:
    return NotebookRun(
        notebook=notebook.path,
        env=env.name,
        status="env-failed",
        duration_s=0.0,
        reason=env.error,
    )


def _skipped(notebook: Notebook, env_names: list[str]) -> NotebookReport:
    runs = {
        name: NotebookRun(notebook.path, name, "skipped", 0.0, reason=notebook.skip_reason)
        for name in env_names
    }
    return NotebookReport(notebook.path, "skipped", runs, skip_reason=notebook.skip_reason)


def _compare(
    config: Config,
    notebook: Notebook,
    runs: dict[str, NotebookRun],
    built: dict[str, EnvInfo],
) -> NotebookReport:
    # Runs that failed for want of Colab or the network say so.
    runs = {name: classify.classified(run) for name, run in runs.items()}
    baseline = runs[config.baseline]
    options = runspec.compare_options(config)
    comparisons = []
    for name, other in runs.items():
        if name == config.baseline:
            continue
        comparison = compare.compare_runs(baseline, other, compare.options_for(notebook, options))
        if config.baseline in built:  # no culprit against stored outputs: no env to compare
            blamed = culprit.infer(comparison, baseline, other, built[config.baseline], built[name])
            if blamed is not None:
                comparison = replace(comparison, culprit=blamed)
        comparisons.append(comparison)
    verdict = compare.notebook_verdict(comparisons)
    warned: list[WarningRecord] = []
    for comparison in comparisons:
        error = runs[comparison.env].error
        if comparison.verdict == "broken" and error is not None:
            package = comparison.culprit.package if comparison.culprit else None
            warned += hints.foreshadowing(error, baseline.warnings, package)
    return NotebookReport(
        notebook.path,
        verdict,
        runs,
        tuple(comparisons),
        foreshadowing=tuple(dict.fromkeys(warned)),
        hints=_hints(runs),
    )


def _hints(runs: dict[str, NotebookRun]) -> tuple[Hint, ...]:
    """The fixes the libraries' own messages suggest: errors first, then warnings."""
    found: list[Hint] = []
    for run in runs.values():
        for error in (run.error, *run.later_errors):
            hint = hints.fix_hint(error.evalue) if error else None
            if error and hint:
                found.append(Hint(error.cell, hint, error.ename))
    for run in runs.values():
        for record in run.warnings:
            hint = hints.fix_hint(record.message)
            if hint:
                source = (
                    f"{record.category} ({record.package})" if record.package else record.category
                )
                found.append(Hint(record.cell, hint, source))
    return tuple(dict.fromkeys(found))


def exit_code(report: Report, config: Config) -> int:
    """0 when nothing regressed; 1 for broken (and changed, unless allowed; with --strict also
    warnings and already-broken); 130 when interrupted."""
    if report.interrupted:
        return 130
    failing = {"broken"}
    if not config.allow_changed:
        failing.add("changed")
    if config.strict:
        failing |= {"warnings", "already-broken"}
    return 1 if any(nb.verdict in failing for nb in report.notebooks) else 0
