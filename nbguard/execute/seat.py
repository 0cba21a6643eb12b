"""A run's place, made before its notebook is known: the workdir, the copy of the course,
the kernel's environment, interpreter (pip layer), sandbox, transport and kernelspec."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nbguard.execute.launch import (
    capture_key,
    interpreter_paths,
    kernel_env,
    socket_dirs,
    transport,
    write_kernelspec,
)
from nbguard.execute.options import ExecOptions
from nbguard.execute.overlay import make_overlay
from nbguard.execute.sandbox import Isolation, isolation, private_dirs
from nbguard.execute.scratch import copy_course, remove_tree

READS_FILE = "reads.jsonl"  # where the kernel's capture lists what the notebook read


@dataclass
class Seat:
    """Everything one kernel starts with; the notebook only picks its folder in `scratch`."""

    workdir: Path
    scratch: Path  # the run's copy of the course; the kernel starts in it
    env: dict[str, str]
    sandbox: Isolation
    connection: dict[str, str]  # launch.transport's choice
    capture_key: str  # only warning records carrying it are the capture's own
    kernels_dir: Path
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        """Remove the course copy and the socket directory; the workdir stays for the run's
        last words (kernel.log, the files read) until the run has read them."""
        remove_tree(self.scratch)
        self._stack.close()


def prepare(course_root: Path, python: Path, options: ExecOptions, workdir: Path) -> Seat:
    """A seat for a kernel of `python`'s env under `options`, in `workdir` (resolved)."""
    scratch = workdir / "course"
    workdir.mkdir(parents=True, exist_ok=True)
    copy_course(course_root, scratch, options.copy_ignore, workdir)
    stack = contextlib.ExitStack()
    try:
        env = kernel_env(course_root, scratch, options, workdir)
        kernel_python = _pip_layer(python, workdir, env) if options.pip_overlay else python
        connection = transport(stack)
        shared = _home_cache(options)
        sandbox = isolation(
            enabled=options.sandbox,
            offline=options.offline,
            workdir=workdir,
            writable=(*socket_dirs(connection), *shared),
            readable=(
                *interpreter_paths(python),
                *interpreter_paths(kernel_python),
                *map(Path, _path_entries(env)),
                *options.readable,
            ),
        )
        if sandbox.sandboxed:
            env.update(private_dirs(workdir))
            if shared:
                env["XDG_CACHE_HOME"] = str(shared[0])
        key, key_file = capture_key(workdir)
        kernels = write_kernelspec(
            workdir,
            kernel_python,
            options.memory_limit,
            sandbox.prefix,
            key_file,
            workdir / READS_FILE,
        )
    except BaseException:
        remove_tree(scratch)
        stack.close()
        raise
    return Seat(workdir, scratch, env, sandbox, connection, key, kernels, stack)


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


def _home_cache(options: ExecOptions) -> tuple[Path, ...]:
    """The env's shared cache folder (options.home_cache), made now: a sandbox binds only
    folders that exist."""
    if options.home_cache is None or not options.sandbox:
        return ()
    options.home_cache.mkdir(parents=True, exist_ok=True)
    return (options.home_cache,)


def _path_entries(env: Mapping[str, str]) -> list[str]:
    return [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
