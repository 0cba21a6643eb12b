"""One notebook in one built env, run the same way for the audit and for blame's probes, and
the one boundary where a failure of nbguard's own code becomes a notebook's status.

A run gets a workdir of its own, the course's package installed for its env (course-code =
"install"), the env's kernel options and a pip layer of its own; a run nothing of which
changed since is taken from the execution cache (execute/memo.py). What touches the machine
(resolvers, venvs, kernels) sits behind `Backend`, so the fast tests drive the pipeline with
a fake one.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from nbguard import envs, execute, runspec
from nbguard.envs.bytecode import compile_imports
from nbguard.envs.interpreters import Interpreter
from nbguard.execute import alike
from nbguard.model import EnvInfo, InternalError, Notebook, NotebookRun
from nbguard.settings import Config, EnvSpec

T = TypeVar("T")
Progress = Callable[[str], None]


def _env_folder(env: EnvInfo) -> str:
    """A folder name for `env` in this run's scratch: its name, and its build where known
    (a blame probe may reuse a name for another set of versions)."""
    return f"{env.name}-{env.fingerprint[:12]}" if env.fingerprint else env.name


def guarded(stage: str, work: Callable[[], T], failed: Callable[[InternalError], T]) -> T:
    """`work()`, or `failed(...)` with what went wrong when nbguard's own code raises.

    The one broad `except` of nbguard (as nox's SessionRunner.execute): a bug costs the
    notebook it happened on, never the audit and its report. Ctrl-C and SIGTERM are
    BaseExceptions and pass through.
    """
    try:
        return work()
    except Exception as exc:
        return failed(
            InternalError(
                stage=stage,
                ename=type(exc).__name__,
                message=str(exc),
                traceback="".join(traceback.format_exception(exc)),
            )
        )


class Backend(Protocol):
    """The work that touches the machine: interpreters, resolvers, venvs, kernels."""

    def interpreter(self, spec: EnvSpec) -> Interpreter: ...

    def build(self, spec: EnvSpec, interpreter: Interpreter, progress: Progress) -> EnvInfo: ...

    def build_variant(
        self,
        name: str,
        interpreter: Interpreter,
        base: EnvInfo,
        pins: dict[str, str],
        *,
        prerelease: bool,
        progress: Progress,
        wheels_only: bool = False,
        lift: bool = False,
        resolve_only: bool = False,
    ) -> EnvInfo: ...

    def verify(self, env: EnvInfo) -> EnvInfo:
        """`env` checked whole before a kernel starts in it (rebuilt when damaged); the
        check `build` may leave until a run misses the execution cache."""
        ...

    def install_course(self, env: EnvInfo, source: Path, target: Path) -> str | None: ...

    def compile_imports(
        self, env: EnvInfo, files: tuple[str, ...], donors: tuple[EnvInfo, ...] = ()
    ) -> str: ...

    def execute(
        self,
        notebook: Notebook,
        course: Path,
        env: EnvInfo,
        options: execute.ExecOptions,
        workdir: Path,
    ) -> NotebookRun: ...

    def stop_kernels(self) -> None: ...


class Machine:
    """The real backend: envs built by uv or pip-tools, notebooks executed by nbclient."""

    def __init__(self, options: envs.BuildOptions) -> None:
        self.options = options

    def interpreter(self, spec: EnvSpec) -> Interpreter:
        return envs.interpreter_for(spec)

    def build(self, spec: EnvSpec, interpreter: Interpreter, progress: Progress) -> EnvInfo:
        return envs.build(spec, self.options, interpreter, progress)

    def build_variant(
        self,
        name: str,
        interpreter: Interpreter,
        base: EnvInfo,
        pins: dict[str, str],
        *,
        prerelease: bool,
        progress: Progress,
        wheels_only: bool = False,
        lift: bool = False,
        resolve_only: bool = False,
    ) -> EnvInfo:
        return envs.build_variant(
            name,
            interpreter,
            base,
            pins,
            self.options,
            prerelease=prerelease,
            progress=progress,
            wheels_only=wheels_only,
            lift=lift,
            resolve_only=resolve_only,
        )

    def verify(self, env: EnvInfo) -> EnvInfo:
        return envs.verify(env)

    def install_course(self, env: EnvInfo, source: Path, target: Path) -> str | None:
        checked = envs.verify(env)  # the install runs the env's Python
        if checked.error:
            return checked.error
        return envs.install_course(self.options, env, source, target)

    def compile_imports(
        self, env: EnvInfo, files: tuple[str, ...], donors: tuple[EnvInfo, ...] = ()
    ) -> str:
        """Bytecode for `files` (below site-packages) in a probe env, before a kernel runs;
        taken where it can be from `donors`, envs compiled at install."""
        assert env.interpreter is not None
        store = self.options.cache_dir / "bytecode"
        given = [donor.interpreter for donor in donors if donor.interpreter is not None]
        return compile_imports(env.interpreter, files, store, given)

    def execute(
        self,
        notebook: Notebook,
        course: Path,
        env: EnvInfo,
        options: execute.ExecOptions,
        workdir: Path,
    ) -> NotebookRun:
        assert env.interpreter is not None
        checked = envs.verify(env)  # a no-op unless no run needed the env before
        if checked.error:
            return NotebookRun(notebook.path, env.name, "env-failed", 0.0, reason=checked.error)
        return execute.execute_notebook(
            notebook, course, env.name, env.interpreter, options, workdir
        )

    def stop_kernels(self) -> None:
        execute.kill_all_kernels()
        execute.release_warm()


class Runner:
    """Runs notebooks of one course in built envs; safe to share between worker threads.

    Everything a run writes lives under `scratch`, which the caller owns and removes.
    """

    def __init__(self, config: Config, backend: Backend, scratch: Path) -> None:
        self.course = config.course
        self.backend = backend
        self.scratch = scratch
        self.options = runspec.exec_options(config)
        self.parameters = partial(runspec.notebook_parameters, config)
        self.install_course = config.course_code == "install"
        self._lock = threading.Lock()  # the run numbers
        self._installing = threading.Lock()  # the course copy and its installs
        self._sites: dict[str, Path | str] = {}  # env fingerprint → course site, or why not
        self._numbers = itertools.count(1)
        self.memo = execute.Memo(
            config.cache_dir / "runs",
            config.course,
            self.options,
            course_code=config.course_code,
            limit=config.exec_cache_size,
            reuse=config.cache,
        )
        self._queued: dict[str, int] = {}  # env name → runs queued and not started yet

    def prepare(self, env: EnvInfo) -> EnvInfo:
        """`env` ready for kernels: with course-code = "install", the course's package is
        installed for it once (outside the cached env); `error` says why when it cannot be."""
        if not self.install_course or not env.ok:
            return env
        site = self._course_site(env)
        return replace(env, error=site) if isinstance(site, str) else env

    def checked(self, env: EnvInfo, notebooks: Sequence[Notebook]) -> EnvInfo:
        """`env` checked whole (backend.verify) before its runs start, unless every one of
        them will come from the execution cache: a cached run starts no Python in the env,
        and its result is the one a whole env of the same fingerprint gave."""
        if not env.ok:
            return env
        if self.install_course or any(self._misses(notebook, env) for notebook in notebooks):
            return self.backend.verify(env)
        return env

    def expected(self, notebook: Notebook, env: EnvInfo) -> float | None:
        """How long `notebook`'s run in `env` took last time (the execution cache's stored
        run), None when it never ran so (or changed since)."""
        key = self.memo.key(notebook, env, self.parameters(notebook.path)) if env.ok else None
        return None if key is None else self.memo.expected(key)

    def _misses(self, notebook: Notebook, env: EnvInfo) -> bool:
        return self._stored(notebook, env)[1] is None

    def _stored(
        self, notebook: Notebook, env: EnvInfo, *, again: bool = False, fresh: bool = False
    ) -> tuple[str | None, NotebookRun | None]:
        """`notebook`'s key in `env` for the execution cache, and the run stored under it
        that may be reused now (None: it executes; always, when `fresh`)."""
        key = self.memo.key(notebook, env, self.parameters(notebook.path), again=again)
        return key, None if key is None or fresh else self.memo.get(key, notebook, env)

    def expect(self, env: EnvInfo, runs: int) -> None:
        """`runs` more runs in `env` are queued (fewer, when negative: runs that will take no
        kernel after all): each run starts the next one's kernel ahead."""
        with self._lock:
            self._queued[env.name] = self._queued.get(env.name, 0) + runs

    def run(
        self, notebook: Notebook, env: EnvInfo, *, fresh: bool = False, again: bool = False
    ) -> NotebookRun:
        """`notebook` executed in `env`, or its earlier run from the execution cache while
        nothing it depends on changed (`fresh`: execute it whatever the cache holds; `again`:
        a second run that tells noise from change, cached apart from the first so that the
        two are always two real executions). Whatever the notebook does comes back as the
        run's status; so does an env that could not be built, and nbguard's own failure."""
        if not env.ok:
            reason = env.error or "the env could not be built"
            return NotebookRun(notebook.path, env.name, "env-failed", 0.0, reason=reason)
        started = time.monotonic()
        with self._lock:
            workdir = self.scratch / "runs" / env.name / str(next(self._numbers))
            after = max(0, self._queued.get(env.name, 0) - 1)
            self._queued[env.name] = after

        def execute_it() -> NotebookRun:
            key, cached = self._stored(notebook, env, again=again, fresh=fresh)
            if cached is not None:
                return cached
            parameters = self.parameters(notebook.path)
            site = self._course_site(env) if self.install_course else None
            if isinstance(site, str):
                return NotebookRun(notebook.path, env.name, "env-failed", 0.0, reason=site)
            assert env.interpreter is not None
            options = replace(
                runspec.kernel_options(self.options, env.interpreter, site),
                parameters=parameters,
                ahead=after,
                home_cache=self.scratch / "home-cache" / _env_folder(env),
            )
            run = self.backend.execute(notebook, self.course, env, options, workdir)
            if key is not None:
                self.memo.put(key, run)
            return run

        def internal(error: InternalError) -> NotebookRun:
            return NotebookRun(
                notebook.path,
                env.name,
                "internal-error",
                time.monotonic() - started,
                reason=f"nbguard internal error: {error.ename}: {error.message}",
                internal=error,
            )

        return guarded(f"executing in {env.name}", execute_it, internal)

    def without_executing(
        self, notebook: Notebook, env: EnvInfo, run: NotebookRun, source: EnvInfo
    ) -> NotebookRun | None:
        """`notebook`'s run in `env` with no kernel: from the execution cache, or `run` (its
        run in `source`) as this env's when everything it used is the same here
        (execute/alike.py); None when it has to execute. Decided before the run is queued,
        so that only runs that execute count for the kernels started ahead of need."""
        if not env.ok or not self.memo.reuse:
            return None
        key, cached = self._stored(notebook, env)
        if cached is not None:
            return cached
        if self.install_course or run.notebook != notebook.path or run.reused_from is not None:
            return None
        try:
            if alike.differs(run, source, env) is not None:
                return None
        except OSError:
            return None
        taken = replace(run, env=env.name, cached=False, reused_from=source.name)
        if key is not None:
            self.memo.put(key, taken)
        return taken

    def _course_site(self, env: EnvInfo) -> Path | str:
        """The folder holding the course's installed package for `env`'s kernels, or why it
        cannot be installed; installed once per env, from one scratch copy of the course."""
        assert env.fingerprint is not None
        with self._installing:
            known = self._sites.get(env.fingerprint)
            if known is not None:
                return known
            source = self.scratch / "course-source"
            if not source.exists():
                execute.copy_course(self.course, source, self.options.copy_ignore, self.scratch)
            site = self.scratch / "course-site" / env.fingerprint[:16]
            error = self.backend.install_course(env, source, site)
            self._sites[env.fingerprint] = error or site
            return error or site
