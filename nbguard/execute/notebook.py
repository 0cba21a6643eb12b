"""execute_notebook: one notebook of the course in one env's kernel, as a NotebookRun."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from nbguard.execute import warm
from nbguard.execute.cells import Outcome
from nbguard.execute.launch import env_failed, interpreter_problem
from nbguard.execute.memo import read_record
from nbguard.execute.options import ExecOptions
from nbguard.execute.parameters import inject, restore_cells
from nbguard.execute.reading import UNREADABLE, read_notebook, unreadable_reason
from nbguard.execute.scratch import remove_tree
from nbguard.execute.seat import READS_FILE, Seat, prepare
from nbguard.execute.session import Job, Kernel, launch, run
from nbguard.model import Notebook, NotebookRun, RunStatus

_SANDBOXED_PID = 2


def execute_notebook(
    notebook: Notebook,
    course_root: Path,
    env_name: str,
    python: Path,
    options: ExecOptions,
    workdir: Path,
) -> NotebookRun:
    """Run one notebook of the course in `python`'s environment and report what happened.

    Whatever the notebook does (fail, hang, kill its kernel, write files) comes back as a
    NotebookRun; the course tree is only read. Blocks the calling thread. Takes a kernel
    started ahead for the same env and options when one waits, and with `options.ahead`
    starts one for the next run while this notebook's cells run.
    """
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    # Resolved, because the kernel's os.getcwd() and __file__ show real paths.
    workdir = workdir.resolve()
    course_root = course_root.resolve()
    # Not resolved: a venv's python is a symlink to the base interpreter it must not become.
    python = python.absolute()

    def finish(
        status: RunStatus, seat: Seat | None = None, kernel_tmp: str | None = None, **values: Any
    ) -> NotebookRun:
        where = seat.workdir if seat is not None else workdir
        return NotebookRun(
            notebook=notebook.path,
            env=env_name,
            status=status,
            duration_s=time.monotonic() - started,
            volatile_paths=_volatile_paths(where / "course", python, where, kernel_tmp),
            **values,
        )

    if notebook.skip_reason is not None:
        return finish("skipped", reason=notebook.skip_reason)
    problem = interpreter_problem(python)
    if problem is not None:
        return finish("env-failed", reason=env_failed(env_name, problem))
    try:
        nb = read_notebook(course_root / notebook.path)
    except UNREADABLE as exc:
        return finish("error", reason=unreadable_reason(notebook.path, exc))
    nb, inserted = inject(nb, options.parameters) if options.parameters else (nb, None)

    key = warm.Key.of(course_root, python, options)
    seat, kernel = warm.claim(key) or (prepare(course_root, python, options, workdir), None)
    try:
        cwd = seat.scratch.joinpath(*PurePosixPath(notebook.path).parent.parts)
        cwd.mkdir(parents=True, exist_ok=True)  # its folder may be one copy_ignore skips
        job = Job(nb, env_name, options, python, cwd, seat.capture_key)
        ahead = None
        if options.ahead > warm.waiting(key):
            ahead = partial(warm.start_ahead, key, workdir.with_name(workdir.name + "+"), env_name)
        outcome = asyncio.run(_run(job, seat, kernel, ahead))
    finally:
        seat.close()
    # In the sandbox ipykernel names its temp dir after its pid in the sandbox's namespace:
    # bubblewrap's init is 1, the command it starts 2.
    kernel_pid = _SANDBOXED_PID if seat.sandbox.sandboxed else outcome.kernel_pid
    record = read_record(seat.workdir / READS_FILE, seat.scratch, course_root)
    ran = finish(
        outcome.status,
        seat,
        kernel_tmp=_kernel_tmp(seat.env, kernel_pid),
        cells=outcome.cells,
        error=outcome.error,
        warnings=outcome.warnings,
        reason=outcome.reason,
        later_errors=outcome.later_errors,
        isolation=seat.sandbox.description,
        reads=record.reads,
        imports=record.imports,
        touched=record.touched,
    )
    # Read to the end: removed now, while other runs go on, rather than all at once when the
    # audit's scratch folder goes (seconds for a course, after the last run).
    for folder in {seat.workdir, workdir}:
        remove_tree(folder)
    return restore_cells(ran, inserted)


async def _run(
    job: Job,
    seat: Seat,
    kernel: Kernel | None,
    ahead: Callable[[], Awaitable[None]] | None,
) -> Outcome:
    if kernel is None:
        launched = await launch(seat, job.env_name, job.python)
        if isinstance(launched, Outcome):
            return launched
        kernel = launched
    return await run(job, kernel, ahead)


def _volatile_paths(
    scratch: Path, python: Path, workdir: Path, kernel_tmp: str | None
) -> tuple[tuple[str, str], ...]:
    prefix = python.parent.parent
    pairs = {
        str(scratch): "<course>",
        str(prefix): "<env>",
        os.path.realpath(prefix): "<env>",  # what a symlinked prefix shows in tracebacks
        str(workdir): "<workdir>",
    }
    if kernel_tmp is not None:
        pairs[kernel_tmp] = "<kernel-tmp>"
    return tuple(sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True))


def _kernel_tmp(env: Mapping[str, str], pid: int | None) -> str | None:
    """Where ipykernel names cell code files: warnings printed from a cell show this path.

    ipykernel uses <tempdir>/ipykernel_<pid>/<hash of the code>.py, so only the pid differs
    between two runs of the same cell.
    """
    if pid is None:
        return None
    base = next((env[name] for name in ("TMPDIR", "TEMP", "TMP") if env.get(name)), None)
    return str(Path(base or tempfile.gettempdir()).absolute() / f"ipykernel_{pid}")
