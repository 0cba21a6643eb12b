"""`pytest --nbguard`: one test item per notebook, run and judged by the pipeline of `nbguard run`.

Off unless `--nbguard` is given. Each item runs the pipeline for its own notebook, so `-k`,
`-x` and `--lf` decide which notebooks execute; the envs are built once per process (once in
all under pytest-xdist: the workers wait on the env cache's lock and reuse the build). The
items' reports are gathered (from the workers too) into one nbguard report at the end.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nbguard import settings

if TYPE_CHECKING:
    from nbguard.pytest_items import NotebookFile, Session

# Only settings is imported for every pytest run where nbguard is installed; the pipeline
# and its kernels' libraries (nbguard.pytest_items) come in with --nbguard alone.
_PREFIX = "nbguard_"  # pytest_items.PREFIX
_SESSION: Session | None = None  # for the logreport hook, which gets no config


def pytest_addoption(parser: pytest.Parser) -> None:
    """--nbguard, --nbguard-config, and every setting as --nbguard-KEY (derived from
    settings.SETTINGS, as `nbguard run`'s flags are)."""
    group = parser.getgroup("nbguard", "nbguard: notebooks run in each env and compared")
    group.addoption(
        "--nbguard",
        action="store_true",
        default=False,
        help="collect every notebook of the course (found from the paths given) as a test item "
        "run in each env and judged like `nbguard run`",
    )
    group.addoption(
        "--nbguard-config", metavar="FILE", default=None, help="read nbguard's settings from FILE"
    )
    for flag, options in settings.flag_options("--nbguard-", _PREFIX):
        group.addoption(flag, **options)


def pytest_configure(config: pytest.Config) -> None:
    global _SESSION
    if config.getoption("nbguard"):
        from nbguard import pytest_items

        _SESSION = config.stash[pytest_items.SESSION] = pytest_items.Session(config)


def _state(config: pytest.Config) -> Session | None:
    if not config.getoption("nbguard"):
        return None
    from nbguard.pytest_items import SESSION

    return config.stash.get(SESSION, None)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> NotebookFile | None:
    if file_path.suffix != ".ipynb" or _state(parent.config) is None:
        return None
    from nbguard.pytest_items import NotebookFile

    found: NotebookFile = NotebookFile.from_parent(parent, path=file_path)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # The item's part of the nbguard report rides on its test report, which pytest-xdist
    # sends from the worker to the controller along with the rest.
    report: pytest.TestReport = yield
    if _SESSION is None or report.when != "call":
        return report
    from nbguard.pytest_items import NotebookItem

    if isinstance(item, NotebookItem) and item.setup_error is not None:
        report.nbguard_error = item.setup_error  # type: ignore[attr-defined]
    if isinstance(item, NotebookItem) and item.result is not None:
        report.nbguard = item.result  # type: ignore[attr-defined]
        if report.skipped and isinstance(report.longrepr, tuple):
            # Where the skip is: the notebook, not the plugin's line that said so (pytest's
            # summary reads a None line as none, though its annotation says int).
            report.longrepr = (str(item.path), None, report.longrepr[2])  # type: ignore[assignment]
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _SESSION is None:
        return
    result = getattr(report, "nbguard", None)
    if isinstance(result, dict):
        _SESSION.results.append(result)
    error = getattr(report, "nbguard_error", None)
    if isinstance(error, str) and error not in _SESSION.setup_errors:
        _SESSION.setup_errors.append(error)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None or hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller writes the report
    state.write_reports(interrupted=session.exitstatus == pytest.ExitCode.INTERRUPTED)
    if state.setup_errors:
        from nbguard.pytest_items import EXIT_USAGE

        session.exitstatus = EXIT_USAGE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = _state(terminalreporter.config)
    if state is None:
        return
    for line in (*state.observer.lines, *state.summary):
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _SESSION
    if _state(config) is not None:
        _SESSION = None
