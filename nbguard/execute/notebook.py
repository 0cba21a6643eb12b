"""execute_notebook: one notebook of the course in one env's kernel, as a NotebookRun."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from nbguard.execute.launch import (
    capture_key,
    env_failed,
    interpreter_paths,
    interpreter_problem,
    kernel_env,
    socket_dirs,
    transport,
    write_kernelspec,
)
from nbguard.execute.memo import course_reads
from nbguard.execute.options import ExecOptions
from nbguard.execute.overlay import make_overlay
from nbguard.execute.parameters import inject, restore_cells
from nbguard.execute.reading import UNREADABLE, read_notebook, unreadable_reason
from nbguard.execute.sandbox import isolation, private_dirs
from nbguard.execute.scratch import copy_course, remove_tree
from nbguard.execute.session import Job, run
from nbguard.model import Notebook, NotebookRun, RunStatus

_SANDBOXED_PID = 2
_READS_FILE = "reads.jsonl"  # where the kernel's capture lists what the notebook read


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
    NotebookRun; the course tree is only read. Blocks the calling thread.
    """
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    # Resolved, because the kernel's os.getcwd() and __file__ show real paths.
    workdir = workdir.resolve()
    course_root = course_root.resolve()
    # Not resolved: a venv's python is a symlink to the base interpreter it must not become.
    python = python.absolute()
    scratch = workdir / "course"

    def finish(status: RunStatus, kernel_tmp: str | None = None, **values: Any) -> NotebookRun:
        return NotebookRun(
            notebook=notebook.path,
            env=env_name,
            status=status,
            duration_s=time.monotonic() - started,
            volatile_paths=_volatile_paths(scratch, python, workdir, kernel_tmp),
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

    copy_course(course_root, scratch, options.copy_ignore, workdir)
    try:
        cwd = scratch.joinpath(*PurePosixPath(notebook.path).parent.parts)
        cwd.mkdir(parents=True, exist_ok=True)  # its folder may be one copy_ignore skips
        env = kernel_env(course_root, scratch, options, workdir)
        kernel_python = _pip_layer(python, workdir, env) if options.pip_overlay else python
        with contextlib.ExitStack() as stack:
            connection = transport(stack)
            sandbox = isolation(
                enabled=options.sandbox,
                offline=options.offline,
                workdir=workdir,
                writable=socket_dirs(connection),
                readable=(
                    *interpreter_paths(python),
                    *interpreter_paths(kernel_python),
                    *map(Path, _path_entries(env)),
                    *options.readable,
                ),
            )
            if sandbox.sandboxed:
                env.update(private_dirs(workdir))
            key, key_file = capture_key(workdir)
            job = Job(
                nb=nb,
                env_name=env_name,
                options=options,
                python=python,
                cwd=cwd,
                kernels_dir=write_kernelspec(
                    workdir,
                    kernel_python,
                    options.memory_limit,
                    sandbox.prefix,
                    key_file,
                    workdir / _READS_FILE,
                ),
                env=env,
                workdir=workdir,
                connection=connection,
                capture_key=key,
            )
            outcome = asyncio.run(run(job))
    finally:
        remove_tree(scratch)
    # In the sandbox ipykernel names its temp dir after its pid in the sandbox's namespace:
    # bubblewrap's init is 1, the command it starts 2.
    kernel_pid = _SANDBOXED_PID if sandbox.sandboxed else outcome.kernel_pid
    ran = finish(
        outcome.status,
        kernel_tmp=_kernel_tmp(job.env, kernel_pid),
        cells=outcome.cells,
        error=outcome.error,
        warnings=outcome.warnings,
        reason=outcome.reason,
        later_errors=outcome.later_errors,
        isolation=sandbox.description,
        reads=course_reads(workdir / _READS_FILE, scratch, course_root),
    )
    return restore_cells(ran, inserted)


def _pip_layer(python: Path, workdir: Path, env: dict[str, str]) -> Path:
    """The interpreter of the run's pip overlay, its bin first on PATH; where the env has no
    site-packages to layer over, `python` with pip pointed at a folder of the run's own."""
    overlay = make_overlay(python, workdir / "pip-overlay")
    if overlay is None:
        target = workdir / "pip-target"
        env["PIP_TARGET"] = str(target)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
        return python
    env["PATH"] = os.pathsep.join(filter(None, [str(overlay.parent), env.get("PATH")]))
    env["VIRTUAL_ENV"] = str(overlay.parent.parent)
    return overlay


def _path_entries(env: Mapping[str, str]) -> list[str]:
    return [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]


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
