"""What `pytest --nbguard` runs: the session's courses and shared envs, a notebook's item and
its failure text, the gathered report. Imported only when --nbguard is given."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nbguard import pipeline, runspec, settings
from nbguard.ansi import printable
from nbguard.envs.interpreters import Interpreter
from nbguard.errors import NbguardError
from nbguard.execute import ExecOptions
from nbguard.model import VERDICTS, EnvInfo, Notebook, NotebookRun
from nbguard.report import formats, json_report, nightly, terminal
from nbguard.report.text import change_diff, change_line, first_line
from nbguard.runner import Backend, Machine, Progress
from nbguard.settings import Config, EnvSpec

PREFIX = "nbguard_"  # of the pytest options' dests: nbguard_timeout, nbguard_env__python
EXIT_USAGE = 2  # as `nbguard run` exits on a setup error


SESSION = pytest.StashKey["Session"]()


@dataclass
class _Course:
    config: Config
    notebooks: Mapping[str, Notebook]  # course-relative path → notebook


class Session:
    """What one pytest process knows of nbguard: the courses its notebooks belong to, the
    envs built for them, and the items' results (in the controller, every worker's)."""

    def __init__(self, config: pytest.Config) -> None:
        self.pytest_config = config
        self.courses: dict[Path, _Course] = {}
        self.configs: dict[Path, Config] = {}
        self.results: list[dict[str, Any]] = []
        self.setup_errors: list[str] = []
        self.summary: list[str] = []
        self.started = time.monotonic()
        self.observer = _Progress()
        self._backends: dict[Path, SharedEnvs] = {}
        self._roots: dict[Path, Path] = {}  # a notebook's folder → its course's root

    def course_of(self, notebook: Path) -> tuple[_Course, str]:
        """The course a notebook file belongs to, loaded once, and its course-relative path."""
        folder = notebook.parent
        if folder not in self._roots:
            self._roots[folder] = course_root(folder)
        root = self._roots[folder]
        if root not in self.courses:
            config = self.config_of(root)
            found = pipeline.find_notebooks(config)
            self.courses[root] = _Course(config, {nb.path: nb for nb in found})
            self._backends[root] = SharedEnvs(Machine(runspec.build_options(config)))
        return self.courses[root], notebook.resolve().relative_to(root).as_posix()

    def config_of(self, root: Path) -> Config:
        """The course's settings under the session's --nbguard-* options (also in the
        pytest-xdist controller, which collects nothing but writes the report)."""
        if root not in self.configs:
            overrides, env_overrides = settings.flag_values(
                lambda attr: self.pytest_config.getoption(PREFIX + attr)
            )
            config_file = self.pytest_config.getoption("nbguard_config")
            self.configs[root] = settings.load(
                root, overrides, env_overrides, Path(config_file) if config_file else None
            )
        return self.configs[root]

    def audit(self, course: _Course, notebook: Notebook) -> dict[str, Any]:
        """The pipeline of `nbguard run` for one notebook: its report's JSON."""
        backend = self._backends[course.config.course]
        report = pipeline.run(course.config, self.observer, backend, notebooks=(notebook,))
        if report.interrupted:
            raise KeyboardInterrupt
        return json_report.to_json(report)

    def write_reports(self, *, interrupted: bool) -> None:
        """One nbguard report per course from the items that ran (in every worker);
        `interrupted` after Ctrl-C, as `nbguard run` marks a report cut short."""
        by_course: dict[str, list[dict[str, Any]]] = {}
        for result in self.results:
            by_course.setdefault(str(result.get("course")), []).append(result)
        for course, parts in by_course.items():
            data = merged(parts, time.monotonic() - self.started)
            data["interrupted"] = data["interrupted"] or interrupted
            try:
                config = self.config_of(Path(course))
                report = config.report
                if len(by_course) > 1:
                    report = report.with_name(f"{report.stem}-{Path(course).name}{report.suffix}")
                self._write(data, config, report)
            except NbguardError as exc:
                self.summary.append(f"nbguard: error: {printable(str(exc))}")

    def _write(self, data: dict[str, Any], config: Config, report: Path) -> None:
        if config.since_report is not None:
            data["since"] = nightly.since(nightly.load_previous(config.since_report), data)
        json_report.write(data, report)
        formats.write(data, html=config.html, markdown=config.markdown, junit=config.junit)
        self.summary += env_lines(data)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in data["summary"].items() if n)
        self.summary.append(f"nbguard: {counts}; report: {printable(str(report))}")


def env_lines(data: Mapping[str, Any]) -> list[str]:
    """Each env of the report in one line, as `nbguard run` shows them while it builds."""
    lines = []
    for name, env in (data.get("envs") or {}).items():
        if env.get("error"):
            lines.append(f"nbguard: env {name} failed: {first_line(env['error'])}")
            continue
        how = "reused" if env.get("reused") else f"built in {float(env.get('build_s') or 0):.1f}s"
        packages = len(env.get("packages") or {})
        lines.append(f"nbguard: env {name}: Python {env.get('python')}, {packages} packages, {how}")
    return [printable(line) for line in lines]


def course_root(start: Path) -> Path:
    """The nearest folder at or above `start` with nbguard settings or requirement files;
    `start` itself when none has (loading it then says what to add)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if settings.find_config_file(folder) is not None or settings.default_envs(folder):
            return folder
    return start


def merged(parts: Sequence[Mapping[str, Any]], duration_s: float) -> dict[str, Any]:
    """The items' one-notebook reports as one report of the course, as `nbguard run` writes
    it: notebooks by path, the envs they ran in, the counts."""
    notebooks = sorted(
        (nb for part in parts for nb in part["notebooks"]), key=lambda nb: nb["path"]
    )
    envs: dict[str, Any] = {}
    for part in parts:
        for name, env in (part.get("envs") or {}).items():
            # The item whose run built the env tells how long it took; the others reused it.
            if name not in envs or envs[name].get("reused"):
                envs[name] = env
    summary = dict.fromkeys(VERDICTS, 0)
    for nb in notebooks:
        summary[nb["verdict"]] = summary.get(nb["verdict"], 0) + 1
    costs = [part["blame"] for part in parts if part.get("blame")]
    blame = None
    if costs:
        blame = {
            key: sum(cost[key] for cost in costs)
            for key in ("notebooks", "envs_built", "envs_used", "seconds")
        }
        blame["steps"] = {path: s for cost in costs for path, s in cost["steps"].items()}
    return {
        **parts[0],
        "envs": envs,
        "notebooks": notebooks,
        "summary": summary,
        "duration_s": round(duration_s, 3),
        "interrupted": any(part.get("interrupted") for part in parts),
        "blame": blame,
    }


class SharedEnvs:
    """A backend whose envs are built once per process and reused by every item's pipeline
    run; the rest is the real backend's."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._guard = threading.Lock()
        self._locks: dict[EnvSpec, threading.Lock] = {}
        self._envs: dict[EnvSpec, EnvInfo] = {}
        self._interpreters: dict[EnvSpec, Interpreter] = {}

    def interpreter(self, spec: EnvSpec) -> Interpreter:
        with self._guard:
            if spec not in self._interpreters:
                self._interpreters[spec] = self.backend.interpreter(spec)
            return self._interpreters[spec]

    def build(self, spec: EnvSpec, interpreter: Interpreter, progress: Progress) -> EnvInfo:
        with self._guard:
            lock = self._locks.setdefault(spec, threading.Lock())
        with lock:  # the other env builds meanwhile
            if spec not in self._envs:
                self._envs[spec] = self.backend.build(spec, interpreter, progress)
            return self._envs[spec]

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
        return self.backend.build_variant(
            name,
            interpreter,
            base,
            pins,
            prerelease=prerelease,
            progress=progress,
            wheels_only=wheels_only,
            lift=lift,
            resolve_only=resolve_only,
        )

    def verify(self, env: EnvInfo) -> EnvInfo:
        return self.backend.verify(env)

    def install_course(self, env: EnvInfo, source: Path, target: Path) -> str | None:
        return self.backend.install_course(env, source, target)

    def compile_imports(
        self, env: EnvInfo, files: tuple[str, ...], donors: tuple[EnvInfo, ...] = ()
    ) -> str:
        return self.backend.compile_imports(env, files, donors)

    def execute(
        self,
        notebook: Notebook,
        course: Path,
        env: EnvInfo,
        options: ExecOptions,
        workdir: Path,
    ) -> NotebookRun:
        return self.backend.execute(notebook, course, env, options, workdir)

    def stop_kernels(self) -> None:
        self.backend.stop_kernels()


class _Progress(pipeline.Silent):
    """nbguard's notes (a missing sandbox, blame's progress), once each, for the terminal
    summary: a test's output is captured while it runs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        line = printable(f"nbguard: {text}")
        if line not in self.lines:
            self.lines.append(line)


# --- collection and items -------------------------------------------------------------------


class NotebookFile(pytest.File):
    """A notebook file: one item when the course's settings select it, none otherwise."""

    def collect(self) -> Iterable[NotebookItem]:
        state: Session = self.config.stash[SESSION]
        try:
            course, relative = state.course_of(self.path)
        except NbguardError as exc:
            raise self.CollectError(f"nbguard: error: {printable(str(exc))}") from None
        notebook = course.notebooks.get(relative)
        if notebook is None:
            return []  # excluded by the course's notebooks/exclude globs
        return [NotebookItem.from_parent(self, name="nbguard", course=course, notebook=notebook)]


class NotebookFailed(Exception):
    """The item's notebook failed by nbguard's verdict; its text is the failure."""


class NotebookItem(pytest.Item):
    def __init__(self, *, course: _Course, notebook: Notebook, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.course = course
        self.notebook = notebook
        # Its notebook's report (JSON), which the plugin hands on with the test report.
        self.result: dict[str, Any] | None = None
        self.setup_error: str | None = None  # a setup error's one line (exit code 2)

    def runtest(self) -> None:
        state: Session = self.config.stash[SESSION]
        try:
            self.result = state.audit(self.course, self.notebook)
        except NbguardError as exc:
            # A setup error would fail every item alike: this one fails with nbguard's line,
            # the session stops, and ends with `nbguard run`'s code for it (the plugin's
            # sessionfinish; in the pytest-xdist controller too).
            self.setup_error = f"nbguard: error: {printable(str(exc))}"
            self.session.shouldstop = self.setup_error
            raise NotebookFailed(self.setup_error) from None
        nb = self.result["notebooks"][0]
        verdict = str(nb["verdict"])
        self.user_properties.append(("nbguard-verdict", verdict))
        if nb.get("culprit"):
            culprit = nb["culprit"]
            self.user_properties.append(
                ("nbguard-culprit", f"{culprit['package']} {culprit['from']} → {culprit['to']}")
            )
        if verdict == "skipped":
            pytest.skip(printable(str(nb.get("skip_reason") or "skipped")))
        failing = pipeline.failing_verdicts(self.course.config)
        if verdict in failing or verdict == "internal-error":
            raise NotebookFailed(failure_text(nb, str(self.result["baseline"])))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        if isinstance(excinfo.value, NotebookFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"nbguard: {self.notebook.path}"


def failure_text(nb: Mapping[str, Any], baseline: str) -> str:
    """nbguard's row for the notebook (verdict, what happened, culprit) and each change's
    diff: what `nbguard run` shows, as text."""
    what, culprit = terminal.row_text(nb, baseline)
    lines = [f"{printable(str(nb['path']))}: {nb['verdict']}"]
    lines += ["  " + line for line in what.splitlines()]
    if culprit:
        lines.append(f"  culprit: {culprit}")
    internal = nb.get("internal_error")
    if internal and internal.get("traceback"):
        lines += ["", printable(str(internal["traceback"]))]
    for change in nb.get("changes") or []:
        lines += [
            "",
            f"cell {change['cell']} ({change['env']}): {printable(change_line(change))}",
            printable(change_diff(change, baseline)),
        ]
    return "\n".join(lines)
