"""The orchestrator: config → notebooks and envs → runs → comparisons → culprits → report.

Each stage is a function that returns a value; `run` calls them in order. Setup problems
(no interpreter, no notebooks, bad config) raise NbguardError before any kernel starts; a
notebook's failure is its run's status; nbguard's own failure on one notebook is that
notebook's `internal-error` (runner.guarded), and the audit goes on.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from nbguard import blame, compare, discover, envs, execute, judge, proc, runspec, shard
from nbguard.envs.interpreters import Interpreter
from nbguard.errors import ConfigError, EnvironmentBuildError
from nbguard.model import (
    BlameCost,
    EnvInfo,
    InternalError,
    Notebook,
    NotebookReport,
    NotebookRun,
    Report,
)
from nbguard.runner import Backend, Machine, Runner, guarded
from nbguard.scheduling import LongestFirst
from nbguard.settings import ALWAYS_EXCLUDED, Config

T = TypeVar("T")

# Exit codes of `nbguard run` (the CLI adds 2 for usage/setup errors and 130/143 for
# interruptions): 0 nothing regressed, 1 a notebook broke (or changed, unless allowed),
# 3 nbguard's own code failed on some notebook, so the audit is incomplete.
EXIT_OK = 0
EXIT_REGRESSED = 1
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class Terminated(BaseException):
    """SIGTERM arrived: stop like on Ctrl-C, with the finished part of the report."""


class Observer(Protocol):
    """What the pipeline tells whoever draws progress (the terminal, or nothing). Called
    from worker threads."""

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
class Execution:
    """What executing the notebooks produced: the envs that were built (or failed) and each
    (notebook path, env name) run that finished; `interrupted` after Ctrl-C or SIGTERM."""

    envs: Mapping[str, EnvInfo]
    runs: Mapping[tuple[str, str], NotebookRun]
    interrupted: bool = False
    # Notebook path → its second runs, for those whose outputs differed: the baseline env's
    # first, then any other env's (numbers the baseline printed alike twice).
    reruns: Mapping[str, tuple[NotebookRun, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Again:
    """Which notebooks run once more, and where, to tell volatile outputs from changes."""

    # Given a notebook's finished runs (env name → run): the env to run it once more in.
    first: Callable[[Notebook, Mapping[str, NotebookRun]], str | None]
    # Given its runs and that second run: the other envs to run it once more in.
    more: Callable[[Notebook, Mapping[str, NotebookRun], NotebookRun], Sequence[str]]


def run(
    config: Config,
    observer: Observer | None = None,
    backend: Backend | None = None,
    notebooks: Sequence[Notebook] | None = None,
) -> Report:
    """Execute every notebook (or those given, as the pytest plugin gives one per test item)
    in every env, compare each env's runs with the baseline's, confirm culprits when asked,
    and return the report.

    On Ctrl-C / SIGTERM the notebooks that finished in every env are reported and
    `Report.interrupted` is set; no kernel is left running.
    """
    seen = observer or Silent()
    machine = backend or Machine(runspec.build_options(config))
    started = time.monotonic()
    check_offline(config)
    # Side by side: finding a Python probes candidate executables, a process each.
    with ThreadPoolExecutor(max_workers=len(config.envs), thread_name_prefix="python") as pool:
        found = list(pool.map(machine.interpreter, config.envs))
    interpreters = {spec.name: python for spec, python in zip(config.envs, found, strict=True)}
    for spec in config.envs:
        for line in envs.notes(spec, interpreters[spec.name], runspec.build_options(config)):
            seen.note(line)
    notebooks = shard_of(config, find_notebooks(config)) if notebooks is None else tuple(notebooks)
    runnable = [nb for nb in notebooks if nb.skip_reason is None]
    check_parameters(config, runnable)
    seen.planned(len(notebooks), len(runnable) * len(config.envs), [s.name for s in config.envs])
    with _scratch() as scratch, ThreadPoolExecutor(1, thread_name_prefix="ahead") as ahead:
        runner = Runner(config, machine, scratch)
        again = volatile_rerun(config)
        prepare = partial(_blame_ahead, config, runner, interpreters, ahead)
        execution = execute_all(
            config, runner, interpreters, runnable, seen, again, prepare if config.blame else None
        )
        runs = {**execution.runs, **stored_runs(config, runnable, execution.interrupted)}
        reports = with_parameters(
            config, judge_all(config, notebooks, runs, execution.envs, execution.reruns)
        )
        cost, interrupted = None, execution.interrupted
        if config.blame and not interrupted and config.baseline in execution.envs:
            reports, cost, interrupted = _confirm_culprits(
                config, runner, interpreters, notebooks, reports, execution.envs, seen
            )
        if config.fix and not interrupted:
            from nbguard import fix  # its own imports are heavy: only when fixing

            try:
                reports = fix.propose(config, runner, notebooks, reports, execution.envs, seen.note)
            except (KeyboardInterrupt, Terminated):
                interrupted = True  # the report says so; the fixes found so far are dropped
    return Report(
        course=str(config.course),
        baseline=config.baseline,
        envs={name: execution.envs[name] for name in _env_names(config) if name in execution.envs},
        notebooks=tuple(reports),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=time.monotonic() - started,
        interrupted=interrupted,
        settings=config.public(),
        blame=cost,
    )


def exit_code(report: Report, config: Config) -> int:
    """0 when nothing regressed; 1 for broken (and changed, unless allowed; with --strict also
    warnings and already-broken); 3 when nbguard failed on a notebook (its verdict could be
    anything); 130 when interrupted."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    if any(nb.internal is not None for nb in report.notebooks):
        return EXIT_INTERNAL
    failing = failing_verdicts(config)
    return EXIT_REGRESSED if any(nb.verdict in failing for nb in report.notebooks) else EXIT_OK


def failing_verdicts(config: Config) -> frozenset[str]:
    """The verdicts that fail a run (and a pytest item): broken, changed unless allowed, and
    with --strict warnings and already-broken."""
    failing = {"broken"}
    if not config.allow_changed:
        failing.add("changed")
    if config.strict:
        failing |= {"warnings", "already-broken"}
    return frozenset(failing)


# --- setup ----------------------------------------------------------------------------------


def check_offline(config: Config) -> None:
    """--offline needs network namespaces: said once, up front, rather than as a kernel that
    cannot start in every notebook."""
    if not config.offline:
        return
    probe = proc.run(["unshare", "--net", "--", "true"], timeout=30)
    if not probe.ok:
        raise ConfigError(
            "--offline needs Linux network namespaces (unshare --net), which this machine "
            f"does not allow: {probe.last_lines(1) or 'unshare failed'}"
        )


def find_notebooks(config: Config) -> tuple[Notebook, ...]:
    notebooks = discover.discover(config.course, config.notebooks, config.exclude, ALWAYS_EXCLUDED)
    if not notebooks:
        # A CI job that silently checks nothing is worse than one that fails.
        raise ConfigError(
            f"no notebooks in {config.course} match notebooks={list(config.notebooks)} "
            f"(exclude={list(config.exclude)}); check the globs"
        )
    return notebooks


def check_parameters(config: Config, notebooks: Sequence[Notebook]) -> None:
    """Parameters a notebook cannot take are a setup error before any kernel starts: a rule
    naming no notebook of the course (a typo would silently run the full notebook), or a
    name the notebook's parameters cell does not declare."""
    if not config.parameters:
        return
    every = discover.discover(config.course, ("**/*.ipynb",), (), ALWAYS_EXCLUDED)
    for pattern, name, _ in config.parameters:
        if not any(runspec.names(pattern, nb.path) for nb in every):
            raise ConfigError(
                f"parameter {name} is given for {pattern!r}, which names no notebook of "
                f"{config.course}"
            )
    for notebook in notebooks:
        values = runspec.notebook_parameters(config, notebook.path)
        if values:
            problem = execute.parameters_problem(config.course / notebook.path, values)
            if problem is not None:
                raise ConfigError(f"{notebook.path} {problem}")


def with_parameters(config: Config, reports: Sequence[NotebookReport]) -> list[NotebookReport]:
    """Each report with the parameters its notebook ran with (none for a skipped one)."""
    return [
        report
        if report.verdict == "skipped"
        else replace(report, parameters=runspec.notebook_parameters(config, report.path))
        for report in reports
    ]


def shard_of(config: Config, notebooks: tuple[Notebook, ...]) -> tuple[Notebook, ...]:
    """With --shard K/N, the notebooks of shard K (balanced by an earlier report's durations
    when there is one); else all."""
    if config.shard is None:
        return notebooks
    earlier = config.shard_durations or config.since_report
    durations = shard.durations_from(earlier) if earlier is not None else None
    return shard.select(notebooks, config.shard, durations)


@contextmanager
def _scratch() -> Iterator[Path]:
    """A private folder for scratch copies and workdirs, removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="nbguard-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _env_names(config: Config) -> list[str]:
    """The baseline first (the outputs stored in the notebooks, with baseline = "stored")."""
    names = [spec.name for spec in config.envs]
    return [execute.STORED, *names] if config.baseline == execute.STORED else names


# --- execution ------------------------------------------------------------------------------


def execute_all(
    config: Config,
    runner: Runner,
    interpreters: Mapping[str, Interpreter],
    notebooks: Sequence[Notebook],
    seen: Observer,
    again: Again | None = None,
    on_failure: Callable[[Mapping[str, EnvInfo]], None] | None = None,
) -> Execution:
    """Build the envs side by side; each env's notebooks start as soon as it is ready, so the
    first env's kernels run while the second still installs. `config.jobs` kernels at once.
    A notebook `again` names an env for, once its runs are all in, runs there once more in
    the same pool. `on_failure` is told the envs (while kernels still run) the first time a
    notebook fails outside the baseline env where it ran in the baseline env.

    An env on the baseline's interpreter runs a notebook only once its baseline run is in:
    when that run used nothing that differs between the two envs, it is this env's run too
    (Runner.without_executing), and the notebook is not executed again."""
    cancelled = threading.Event()
    # Envs whose runs wait for the baseline's; each notebook's runs waiting there (env and
    # the future handed out for it), and the baseline runs that are in.
    following = _following(config, interpreters)
    waiting: dict[str, list[tuple[EnvInfo, Future[NotebookRun]]]] = {}
    baseline_runs: dict[str, NotebookRun | None] = {}
    hold = threading.Lock()  # waiting, baseline_runs

    told = threading.Lock()  # held once the sandbox's absence has been said
    ready: dict[str, EnvInfo] = {}
    finished: dict[str, dict[str, NotebookRun]] = {}
    tally = threading.Lock()  # finished
    failed_once = threading.Event()  # on_failure was told
    reruns: list[tuple[str, Future[NotebookRun]]] = []

    def run_one(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        if cancelled.is_set():
            raise KeyboardInterrupt  # queued before Ctrl-C: never started
        result = None
        try:
            seen.run_started(notebook.path, env.name)
            result = runner.run(notebook, env)
        finally:
            if env.name == config.baseline:
                release(notebook, result)
        note = execute.sandbox_note(result.isolation)
        if note is not None and told.acquire(blocking=False):
            seen.note(note)  # once per audit, not once per kernel
        seen.run_finished(result)
        follow_up(notebook, result)
        return result

    def release(notebook: Notebook, result: NotebookRun | None) -> None:
        """The runs waiting for `notebook`'s baseline run queued, now that it is in (None:
        it never came, and they execute on their own)."""
        with hold:
            baseline_runs[notebook.path] = result
            followers = waiting.pop(notebook.path, [])
        for follower, future in followers:
            follow(notebook, follower, result, future)

    def follow(
        notebook: Notebook,
        env: EnvInfo,
        like: NotebookRun | None,
        future: Future[NotebookRun],
    ) -> None:
        """`notebook`'s run in `env` now that its baseline run `like` is in: that run when it
        stands for this env's (or the cache has one), else queued to execute."""
        if like is not None and not cancelled.is_set():
            source = ready[config.baseline]
            work = partial(runner.without_executing, notebook, env, like, source)
            taken = guarded(f"reusing in {env.name}", work, lambda _: None)
            if taken is not None:
                runner.expect(env, -1)  # no kernel will be wanted for it
                seen.run_started(notebook.path, env.name)
                seen.run_finished(taken)
                follow_up(notebook, taken)
                future.set_result(taken)
                return
        order.submit(runner.expected(notebook, env), partial(run_one, notebook, env), future)

    def queue(env: EnvInfo) -> list[Future[NotebookRun]]:
        if env.name not in following:
            return [
                order.submit(runner.expected(notebook, env), partial(run_one, notebook, env))
                for notebook in notebooks
            ]
        futures: list[Future[NotebookRun]] = []
        for notebook in notebooks:
            future: Future[NotebookRun] = Future()
            with hold:
                released = notebook.path in baseline_runs
                like = baseline_runs.get(notebook.path)
                if not released:
                    waiting.setdefault(notebook.path, []).append((env, future))
            if released:
                follow(notebook, env, like, future)
            futures.append(future)
        return futures

    def follow_up(notebook: Notebook, result: NotebookRun) -> None:
        with tally:
            runs = finished.setdefault(notebook.path, {})
            runs[result.env] = result
            if len(runs) < len(config.envs):
                return
            baseline = runs.get(config.baseline)
            broke = (
                baseline is not None
                and not baseline.failed
                and any(run.failed for name, run in runs.items() if name != config.baseline)
            )
            tell = on_failure if broke and not failed_once.is_set() else None
            if tell is not None:
                failed_once.set()
        if tell is not None:
            tell(dict(ready))
        if again is None:
            return
        name = guarded("comparing", partial(again.first, notebook, runs), lambda _: None)
        if name is not None and not cancelled.is_set():
            # Submitted before this run's future completes: every re-run is queued by the time
            # the first runs are all gathered.
            expected = runs[config.baseline].duration_s
            rerun = order.submit(expected, partial(rerun_one, notebook, ready[name], runs))
            reruns.append((notebook.path, rerun))

    def rerun_one(
        notebook: Notebook, env: EnvInfo, runs: Mapping[str, NotebookRun] | None = None
    ) -> NotebookRun:
        if cancelled.is_set():
            raise KeyboardInterrupt  # queued before Ctrl-C: never started
        result = runner.run(notebook, env, again=True)
        if runs is not None and again is not None:
            more = guarded("comparing", partial(again.more, notebook, runs, result), lambda _: ())
            for name in more:
                if not cancelled.is_set():
                    # Queued before this re-run completes, so the gathering below sees it.
                    expected = runs[name].duration_s
                    more_run = order.submit(expected, partial(rerun_one, notebook, ready[name]))
                    reruns.append((notebook.path, more_run))
        return result

    with (
        ThreadPoolExecutor(max_workers=len(config.envs), thread_name_prefix="env") as builders,
        ThreadPoolExecutor(max_workers=config.jobs, thread_name_prefix="kernel") as workers,
    ):
        # Longest expected first across envs: the second env's long runs do not queue behind
        # every run of the first, nor a notebook's re-run behind everything.
        order = LongestFirst(workers)

        def build(name: str) -> tuple[EnvInfo, list[Future[NotebookRun]]]:
            spec = config.env(name)
            env = runner.backend.build(spec, interpreters[name], lambda t: seen.env_step(name, t))
            env = runner.prepare(runner.checked(env, notebooks))
            ready[name] = env
            runner.expect(env, len(notebooks))
            seen.env_ready(env)
            if name == config.baseline and not env.ok:
                # Nothing can be compared with an env that does not exist: every notebook
                # would look "fixed". A setup error, in the resolver's own words.
                raise EnvironmentBuildError(
                    f"the baseline env {name!r} cannot be built, so there is nothing to compare "
                    f"with: {_first_line(env.error or 'unknown error')}"
                )
            return env, queue(env)

        builds = [builders.submit(build, spec.name) for spec in config.envs]
        try:
            queued = [run for _, runs in _gather(builds) for run in runs]
            _gather(queued)
            gathered = 0
            while gathered < len(reruns):  # a re-run may queue more re-runs before it ends
                gathered = len(reruns)
                _gather(future for _, future in reruns[:gathered])
            interrupted = False
        except BaseException as stop:
            # Interrupted, or an env build hit a setup error: start nothing more, stop what
            # runs, keep what finished.
            cancelled.set()
            for future in builds:
                future.cancel()
            if not isinstance(stop, KeyboardInterrupt | Terminated):
                raise
            interrupted = True
        finally:
            # What finished by now; not the runs whose kernels are killed next.
            built = [future.result() for future in _finished(builds)]
            runs = [run.result() for _, futures in built for run in _finished(futures)]
            again_runs: dict[str, tuple[NotebookRun, ...]] = {}
            for path, second in reruns:
                if _finished([second]):
                    again_runs[path] = (*again_runs.get(path, ()), second.result())
            runner.backend.stop_kernels()
    return Execution(
        envs={env.name: env for env, _ in built},
        runs={(run.notebook, run.env): run for run in runs},
        interrupted=interrupted,
        reruns=again_runs,
    )


def _following(config: Config, interpreters: Mapping[str, Interpreter]) -> frozenset[str]:
    """The envs whose runs wait for the baseline's, which may stand for them: those on the
    baseline's interpreter, while runs may be reused (not --no-cache) and the course's own
    package is not built for each env (course-code = "install")."""
    baseline = interpreters.get(config.baseline)
    if baseline is None or not config.cache or config.course_code == "install":
        return frozenset()
    return frozenset(
        name
        for name, interpreter in interpreters.items()
        if name != config.baseline and interpreter.executable == baseline.executable
    )


def volatile_rerun(config: Config) -> Again | None:
    """With volatile-rerun: a notebook whose outputs differ from the baseline's in some env
    runs once more in the baseline env; what differs between the two is volatile. Only the
    notebooks that differ pay for it (with the stored outputs as baseline, none can). When
    only numbers still differ in an env after that (a timing the baseline printed alike
    twice at three decimals), the notebook runs once more in that env too."""
    if not config.volatile_rerun or config.baseline == execute.STORED:
        return None
    options = runspec.compare_options(config)

    def changed(
        notebook: Notebook, runs: Mapping[str, NotebookRun], rerun: NotebookRun | None
    ) -> dict[str, tuple[str, ...]]:
        """Each env whose run still differs from the baseline's: the kinds of its changes."""
        baseline = runs[config.baseline]
        compared = compare.options_for(notebook, options)
        volatile = compare.volatility(notebook, baseline, rerun, compared)
        found: dict[str, tuple[str, ...]] = {}
        for name, run in runs.items():
            if name == config.baseline:
                continue
            comparison = compare.compare_runs(baseline, run, compared, volatile)
            if comparison.verdict == "changed":
                found[name] = tuple(change.kind for change in comparison.changes)
        return found

    def first(notebook: Notebook, runs: Mapping[str, NotebookRun]) -> str | None:
        return config.baseline if changed(notebook, runs, None) else None

    def more(
        notebook: Notebook, runs: Mapping[str, NotebookRun], rerun: NotebookRun
    ) -> Sequence[str]:
        if rerun.status != "ok":
            return ()
        still = changed(notebook, runs, rerun)
        return [name for name, kinds in still.items() if set(kinds) == {"value"}]

    return Again(first, more)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
    return (lines[0] if lines else text) + more


def _gather(futures: Iterable[Future[T]]) -> list[T]:
    """Every future's result, in order; waits in short slices so Ctrl-C and SIGTERM get
    through, and re-raises a future's exception (a setup error of an env build)."""
    futures = list(futures)
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
    return [future.result() for future in futures]


def _finished(futures: Iterable[Future[T]]) -> list[Future[T]]:
    """The futures that completed with a result (after an interruption, not all did)."""
    return [f for f in futures if f.done() and not f.cancelled() and f.exception() is None]


def stored_runs(
    config: Config, notebooks: Sequence[Notebook], interrupted: bool
) -> dict[tuple[str, str], NotebookRun]:
    """With baseline = "stored", the outputs saved in each notebook stand in for a baseline
    env's run."""
    if config.baseline != execute.STORED or interrupted:
        return {}
    return {(nb.path, execute.STORED): execute.stored_run(nb, config.course) for nb in notebooks}


# --- judging --------------------------------------------------------------------------------


def judge_all(
    config: Config,
    notebooks: Sequence[Notebook],
    runs: Mapping[tuple[str, str], NotebookRun],
    envs: Mapping[str, EnvInfo],
    reruns: Mapping[str, Sequence[NotebookRun]] | None = None,
) -> list[NotebookReport]:
    """A report for every notebook that ran in every env (after an interruption, some did
    not: nothing to compare) and for every skipped one; `reruns` tell volatile outputs."""
    names = _env_names(config)
    reports = []
    for notebook in notebooks:
        if notebook.skip_reason is not None:
            reports.append(judge.skipped(notebook, names))
            continue
        nb_runs = {
            name: runs[(notebook.path, name)] for name in names if (notebook.path, name) in runs
        }
        if len(nb_runs) == len(names):
            again = tuple((reruns or {}).get(notebook.path, ()))
            reports.append(_judged(config, notebook, nb_runs, envs, again))
    return reports


def _judged(
    config: Config,
    notebook: Notebook,
    runs: dict[str, NotebookRun],
    envs: Mapping[str, EnvInfo],
    reruns: tuple[NotebookRun, ...] = (),
) -> NotebookReport:
    def failed(error: InternalError) -> NotebookReport:
        return NotebookReport(notebook.path, "internal-error", runs, internal=error)

    options = runspec.compare_options(config)
    work = partial(judge.judge, notebook, runs, config.baseline, envs, options, reruns)
    return guarded("comparing", work, failed)


# --- blame ----------------------------------------------------------------------------------


def _blame_ahead(
    config: Config,
    runner: Runner,
    interpreters: Mapping[str, Interpreter],
    pool: ThreadPoolExecutor,
    built: Mapping[str, EnvInfo],
) -> None:
    """With --blame, once a notebook breaks while the audit's kernels still run: the lifted
    env each blame of an env whose Python moved asks for first, built in `pool`
    (blame.lift_ahead)."""
    before = built.get(config.baseline)
    if before is None:
        return
    for name, after in built.items():
        if name == config.baseline or name not in interpreters:
            continue
        work = partial(
            blame.lift_ahead,
            runner,
            interpreters[name],
            before,
            after,
            prerelease=config.env(name).prerelease,
            build_sdists=config.blame_sdists,
        )
        # Only a head start: a failure here is the blame's to meet, and to report.
        pool.submit(guarded, f"building {name}'s lifted probe env", work, lambda _: None)


def _confirm_culprits(
    config: Config,
    runner: Runner,
    interpreters: Mapping[str, Interpreter],
    notebooks: Sequence[Notebook],
    reports: list[NotebookReport],
    built: Mapping[str, EnvInfo],
    seen: Observer,
) -> tuple[list[NotebookReport], BlameCost, bool]:
    """Each broken or changed notebook's culprit, confirmed by rebuilt envs where possible;
    whether Ctrl-C or SIGTERM cut it short (the culprits found so far are kept)."""
    started = time.monotonic()
    by_path = {notebook.path: notebook for notebook in notebooks}
    wanted = sum(nb.verdict in {"broken", "changed"} for nb in reports)
    if wanted:
        seen.note(f"confirming the culprits of {wanted} notebooks by rebuilding envs…")
    cancelled = threading.Event()
    kernels = threading.BoundedSemaphore(max(1, config.jobs))
    contexts = {
        name: blame.BlameContext(
            runner=runner,
            interpreter=interpreter,
            prerelease=config.env(name).prerelease,
            compare_options=runspec.compare_options(config),
            cache_dir=config.cache_dir,
            progress=seen.note,
            baseline_interpreter=interpreters.get(config.baseline),
            deadline=None if config.blame_budget is None else started + config.blame_budget,
            build_sdists=config.blame_sdists,
            budget_s=config.blame_budget,
            stop=cancelled,
            kernels=kernels,
        )
        for name, interpreter in interpreters.items()
    }

    def confirm_one(nb: NotebookReport, index: int) -> blame.BlameResult | InternalError:
        comparison = nb.comparisons[index]
        if cancelled.is_set():
            raise KeyboardInterrupt  # queued before Ctrl-C: never started
        work = partial(
            blame.confirm,
            contexts[comparison.env],
            by_path[nb.path],
            built[config.baseline],
            built[comparison.env],
            nb.runs[config.baseline],
            nb.runs[comparison.env],
            comparison.culprit,
            next((run for run in nb.reruns if run.env == config.baseline), None),
        )
        return guarded("confirming the culprit", work, _blame_failed)

    # Every blame at once, `config.jobs` kernels at a time (twice as many blames: one builds
    # while another runs): probes two notebooks share (one "numpy reverted" env) are resolved
    # and built once, the second waiting on the env cache's lock.
    blamed = [
        (nb, index)
        for nb in reports
        for index, comparison in enumerate(nb.comparisons)
        if comparison.verdict in {"broken", "changed"} and comparison.env in built
    ]
    results: dict[tuple[str, str], blame.BlameResult | InternalError] = {}
    interrupted = False
    workers = 2 * max(1, config.jobs)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blame") as pool:
        futures = [pool.submit(confirm_one, nb, index) for nb, index in blamed]
        try:
            _gather(futures)
        except (KeyboardInterrupt, Terminated):
            cancelled.set()
            for future in futures:
                future.cancel()
            interrupted = True
        finally:
            # What finished by now; not the blames whose kernels are killed next.
            for (nb, index), future in zip(blamed, futures, strict=True):
                if _finished([future]):
                    results[(nb.path, nb.comparisons[index].env)] = future.result()
            runner.backend.stop_kernels()
    confirmed: list[NotebookReport] = []
    built_count = used = 0
    seconds = 0.0
    steps: dict[str, tuple[str, ...]] = {}
    for nb in reports:
        comparisons = []
        for comparison in nb.comparisons:
            result = results.get((nb.path, comparison.env))
            if result is None:
                comparisons.append(comparison)
            elif isinstance(result, InternalError):
                # The verdict stands; the culprit stays as inferred, the failure is told.
                comparisons.append(comparison)
                nb = replace(nb, internal=result)
            else:
                built_count += result.envs_built
                used += result.envs_used
                seconds += result.seconds
                steps[nb.path] = result.steps
                comparisons.append(
                    replace(comparison, culprit=result.culprit, hidden=result.hidden)
                )
        confirmed.append(replace(nb, comparisons=tuple(comparisons)))
    return confirmed, BlameCost(len(steps), built_count, used, seconds, steps), interrupted


def _blame_failed(error: InternalError) -> blame.BlameResult | InternalError:
    return error
