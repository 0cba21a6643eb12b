"""Verified fixes: for each broken notebook, the smallest source edit that makes it run in the
env it broke in, checked by running it there (and in the baseline env) from a scratch copy.

The modules, in the order a fix is made:

- ``rules``: the table of well-known migrations, each with the release that made it necessary
- ``candidates``: the edits to try, most trusted first: the library's words, ruff, the table
- ``ipynb``: new cell sources written into a notebook's JSON text, every other byte kept
- ``verify``: candidates run in scratch copies until one gets past the failing cell
- ``patch``: the verified fixes as a `git apply` patch, and written into the course (--write)

The course tree is only read here; `patch.apply_fixes` writes, and only when asked to.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePosixPath

from nbguard import execute, runspec
from nbguard.execute.scratch import remove_tree
from nbguard.fix import ipynb
from nbguard.fix.candidates import Code
from nbguard.fix.patch import apply_fixes, git_patch, repository_prefix, write_patch
from nbguard.fix.verify import Outcome, fix_notebook
from nbguard.model import EnvInfo, FileFix, InternalError, Notebook, NotebookReport, NotebookRun
from nbguard.runner import Runner, guarded
from nbguard.settings import Config

__all__ = ["apply_fixes", "deliver", "propose"]


def propose(
    config: Config,
    runner: Runner,
    notebooks: Sequence[Notebook],
    reports: Sequence[NotebookReport],
    envs: Mapping[str, EnvInfo],
    note: Callable[[str], None],
) -> list[NotebookReport]:
    """`reports` with a verified fix on each broken notebook that has one; the candidates
    that did not verify join the notebook's hints. `config.jobs` notebooks at a time."""
    by_path = {notebook.path: notebook for notebook in notebooks}
    wanted = [
        (index, nb, comparison.env)
        for index, nb in enumerate(reports)
        for comparison in nb.comparisons[:1]
        if comparison.verdict == "broken" and comparison.env in envs and nb.path in by_path
    ]
    if not wanted:
        return list(reports)
    note(f"looking for verified fixes of {len(wanted)} broken notebooks…")
    numbers = itertools.count(1)
    lock = threading.Lock()

    def one(nb: NotebookReport, env: str) -> NotebookReport:
        def failed(error: InternalError) -> NotebookReport:
            return replace(nb, internal=error)

        def work() -> NotebookReport:
            with lock:
                folder = runner.scratch / "fixes" / str(next(numbers))
            trial = _Trial(config, runner, by_path[nb.path], folder)
            outcome: Outcome = fix_notebook(
                nb,
                env,
                envs.get(config.baseline),
                envs[env],
                trial,
                partial(read_course_file, config.course),
                runspec.compare_options(config),
                config.baseline,
            )
            if outcome.fix is not None:
                note(f"{nb.path}: verified fix ({outcome.fix.after} in {env})")
            return replace(nb, fix=outcome.fix, hints=(*nb.hints, *outcome.hints))

        return guarded("looking for a fix", work, failed)

    updated = list(reports)
    with ThreadPoolExecutor(max_workers=max(1, config.jobs), thread_name_prefix="fix") as pool:
        futures = {index: pool.submit(one, nb, env) for index, nb, env in wanted}
        try:
            for index, future in futures.items():
                updated[index] = future.result()
        finally:
            for future in futures.values():
                future.cancel()
            runner.backend.stop_kernels()
    return updated


def read_course_file(course: Path, path: str) -> str | None:
    """A course file's exact text (no newline translation); None outside the course, or when
    it cannot be read as UTF-8."""
    if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
        return None
    try:
        return (course / path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class _Trial:
    """The notebook run with given code: a scratch copy of the course, edited, run by a
    Runner of its own (so the kernel's path sees the edited course modules)."""

    def __init__(self, config: Config, runner: Runner, notebook: Notebook, folder: Path) -> None:
        self.config = config
        self.runner = runner
        self.notebook = notebook
        self.folder = folder
        self.numbers = itertools.count(1)

    def __call__(self, code: Code, env: EnvInfo) -> NotebookRun:
        folder = self.folder / str(next(self.numbers))
        course = folder / "course"
        try:
            execute.copy_course(self.config.course, course, self.runner.options.copy_ignore, folder)
            text = read_course_file(self.config.course, self.notebook.path)
            if text is None:
                raise OSError(f"cannot read {self.notebook.path}")
            original = ipynb.code_sources(text)
            changed = {i: s for i, s in code.cells.items() if original.get(i) != s}
            target = course / self.notebook.path
            target.write_bytes(ipynb.replace_sources(text, changed).encode("utf-8"))
            for path, module in code.files.items():
                (course / path).write_bytes(module.encode("utf-8"))
            config = replace(self.config, course=course)
            return Runner(config, self.runner.backend, folder / "scratch").run(self.notebook, env)
        finally:
            remove_tree(folder)


def deliver(
    reports: Sequence[NotebookReport], course: Path, patch_file: Path, write: bool
) -> dict[str, object]:
    """The verified fixes as one patch file (when there are any) and, with
    `write`, in the course itself; what was done, for the report's `fixes`."""
    # A course module two notebooks' fixes both edit is patched once: the first edit, which
    # the second notebook's fix then also went through when they agree.
    by_path: dict[str, FileFix] = {}
    for nb in reports:
        for file in nb.fix.files if nb.fix else ():
            by_path.setdefault(file.path, file)
    files = list(by_path.values())
    done: dict[str, object] = {
        "notebooks": sum(nb.fix is not None for nb in reports),
        "broken": sum(nb.verdict == "broken" for nb in reports),
        "patch": None,
        "written": [],
    }
    if not files:
        return done
    write_patch(git_patch(files, repository_prefix(course)), patch_file)
    done["patch"] = str(patch_file)
    if write:
        done["written"] = apply_fixes(course, files)
    return done
