"""Executing one notebook in one environment's kernel; the only nbclient/jupyter_client import."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import fnmatch
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from nbguard.errors import NbguardError
from nbguard.model import (
    CellError,
    CellResult,
    CellStatus,
    Notebook,
    NotebookRun,
    Output,
    RunStatus,
    Tolerance,
    WarningRecord,
)
from nbguard.secret_env import allowed, is_secret

__all__ = [
    "CAPTURE_MIME",
    "STORED",
    "ExecOptions",
    "copy_course",
    "execute_notebook",
    "kill_all_kernels",
    "stored_run",
]

# The mime type _kernel_capture.py publishes its records under (keep the two in step).
CAPTURE_MIME = "application/vnd.nbguard.warnings+json"
# Cell tags and comment markers, nbguard's own and those of nbclient and nbval, so a course
# migrating from nbval keeps its annotations.
_SKIP_TAGS = frozenset({"skip-execution", "nbguard-skip", "nbval-skip"})
_ALLOWED_ERROR_TAGS = frozenset({"raises-exception", "nbval-raises-exception"})
_IGNORE_OUTPUT_TAGS = frozenset({"nbguard-ignore-output", "nbval-ignore-output"})
_MARKERS = {
    "NBVAL_SKIP": _SKIP_TAGS,
    "NBVAL_RAISES_EXCEPTION": _ALLOWED_ERROR_TAGS,
    "NBVAL_IGNORE_OUTPUT": _IGNORE_OUTPUT_TAGS,
}
_MARKER_LINE = re.compile(r"^\s*#\s*(NBVAL_[A-Z_]+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class _CellFlags:
    skip: bool
    allowed_error: bool
    ignore_output: bool
    tolerance: Tolerance | None


def _cell_flags(cell: Any) -> _CellFlags:
    """What a cell's tags, nbval comment markers and metadata ask of nbguard."""
    tags = {str(tag) for tag in cell.metadata.get("tags", ()) or ()}
    for marker in _MARKER_LINE.findall(str(cell.source)):
        tags |= _MARKERS.get(marker, frozenset())
    own = cell.metadata.get("nbguard")
    return _CellFlags(
        skip=bool(tags & _SKIP_TAGS),
        allowed_error=bool(tags & _ALLOWED_ERROR_TAGS),
        ignore_output=bool(tags & _IGNORE_OUTPUT_TAGS),
        tolerance=Tolerance.from_metadata(own.get("tolerance")) if isinstance(own, dict) else None,
    )


def _cell_result(
    index: int, cell: Any, flags: _CellFlags, status: CellStatus, outputs: tuple[Output, ...] = ()
) -> CellResult:
    return CellResult(
        index,
        status,
        cell.source,
        outputs,
        allowed_error=flags.allowed_error,
        ignore_output=flags.ignore_output,
        tolerance=flags.tolerance,
    )


# The pseudo-env whose "run" is the outputs saved in the notebook file.
STORED = "stored"
_CAPTURE_SOURCE = Path(__file__).with_name("_kernel_capture.py")
_KERNEL_NAME = "nbguard"
# Variables of nbguard's own process that would point the kernel at the wrong Python or make
# it behave unlike a student's Jupyter (MPLBACKEND=Agg in CI would swallow every figure,
# PYTHONWARNINGS=error meant for nbguard would break notebooks); kernel_env can set them.
_SCRUBBED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONEXECUTABLE",
    "PYTHONWARNINGS",
    "VIRTUAL_ENV",
    "MPLBACKEND",
)
# Colour and cursor sequences (CSI) and hyperlinks (OSC) that IPython puts in tracebacks.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_KERNEL_NOISE = ("running over TCP without encryption",)


@dataclass(frozen=True)
class ExecOptions:
    cell_timeout: float | None = 300.0  # seconds per cell; None = no limit
    notebook_timeout: float | None = None  # seconds for all cells of the notebook together
    startup_timeout: float = 60.0
    # Extra dirs (absolute, inside the course) prepended to PYTHONPATH, mapped into the copy.
    python_path: tuple[Path, ...] = ()
    kernel_env: Mapping[str, str] = field(default_factory=dict)
    # Names (fnmatch) not copied into the scratch tree.
    copy_ignore: tuple[str, ...] = (
        ".git",
        ".nbguard",
        ".ipynb_checkpoints",
        "_build",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
    )
    # Run the cells after a failing one too, to find the later independent errors; a
    # timeout or a dead kernel still ends the notebook.
    keep_going: bool = False
    # Secret-looking variables of nbguard's environment (secret_env.SECRET_PATTERNS) still
    # passed to kernels: exact names or fnmatch globs.
    pass_env: tuple[str, ...] = ()
    # The kernel's address-space limit (RLIMIT_AS) in bytes; None = no limit.
    memory_limit: int | None = None
    # No network for the kernel: it starts in a new, empty Linux network namespace (it talks
    # to nbguard over Unix sockets, which namespaces leave alone).
    offline: bool = False
    # Characters of outputs (text, base64) one notebook run keeps; None = no cap.
    max_output: int | None = 10 * 1024**2


# -- the live-kernel registry (the only state shared between worker threads) ---------------

_LIVE_LOCK = threading.RLock()  # re-entrant: a signal handler may run on a thread holding it
_LIVE: dict[int, int] = {}  # token -> process group of a kernel still running
_KILLED: set[int] = set()  # tokens kill_all_kernels stopped, so the run can say why
_TOKENS = itertools.count(1)


def kill_all_kernels() -> None:
    """Kill every kernel still running (its whole process group); safe from any thread."""
    with _LIVE_LOCK:
        for token, group in list(_LIVE.items()):
            _KILLED.add(token)
            _kill_group(group)


def _register(group: int) -> int:
    with _LIVE_LOCK:
        token = next(_TOKENS)
        _LIVE[token] = group
        return token


def _unregister(token: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(token, None)
        _KILLED.discard(token)


def _was_killed(token: int | None) -> bool:
    """Whether kill_all_kernels stopped this kernel (rather than the notebook killing it)."""
    with _LIVE_LOCK:
        return token is not None and token in _KILLED


def _kill_group(group: int) -> None:
    # The kernel leads its own session (jupyter_client starts it with start_new_session), so
    # the group holds the kernel and whatever it spawned (multiprocessing pools, servers).
    with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
        os.killpg(group, signal.SIGKILL)  # AttributeError: no process groups on Windows


# -- the public entry point ----------------------------------------------------------------


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
    problem = _interpreter_problem(python)
    if problem is not None:
        return finish("env-failed", reason=_env_failed(env_name, problem))
    try:
        nb = _read_notebook(course_root / notebook.path)
    except _UNREADABLE as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return finish("error", reason=f"cannot read {notebook.path}: {cause}")

    copy_course(course_root, scratch, options.copy_ignore, workdir)
    try:
        cwd = scratch.joinpath(*PurePosixPath(notebook.path).parent.parts)
        cwd.mkdir(parents=True, exist_ok=True)  # its folder may be one copy_ignore skips
        job = _Job(
            nb=nb,
            env_name=env_name,
            options=options,
            python=python,
            cwd=cwd,
            kernels_dir=_write_kernelspec(workdir, python, options.memory_limit, options.offline),
            env=_kernel_env(course_root, scratch, options, workdir),
            workdir=workdir,
        )
        outcome = asyncio.run(_run(job))
    finally:
        _remove_tree(scratch)
    return finish(
        outcome.status,
        kernel_tmp=_kernel_tmp(job.env, outcome.kernel_pid),
        cells=outcome.cells,
        error=outcome.error,
        warnings=outcome.warnings,
        reason=outcome.reason,
        later_errors=outcome.later_errors,
    )


def stored_run(notebook: Notebook, course_root: Path) -> NotebookRun:
    """The outputs saved in the notebook file as a run of the pseudo-env `stored`: the
    baseline a course already keeps in git (`--baseline stored`). No kernel starts.

    A cell the author never ran (no execution count, no outputs) is not compared; a stored
    error output in a cell not allowed to raise makes the stored run an `error` run.
    """
    started = time.monotonic()

    def finish(status: RunStatus, **values: Any) -> NotebookRun:
        duration = time.monotonic() - started
        return NotebookRun(notebook.path, STORED, status, duration, **values)

    if notebook.skip_reason is not None:
        return finish("skipped", reason=notebook.skip_reason)
    try:
        nb = _read_notebook(course_root / notebook.path)
    except _UNREADABLE as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return finish("error", reason=f"cannot read {notebook.path}: {cause}")
    cells: list[CellResult] = []
    error: CellError | None = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        flags = _cell_flags(cell)
        outputs, _ = _convert_outputs(index, list(cell.get("outputs", [])))
        never_ran = cell.get("execution_count") is None and not outputs
        if never_ran:
            flags = replace(flags, ignore_output=True)
        status: CellStatus = "skipped" if flags.skip else "not-run" if never_ran else "ok"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and not flags.skip:
                status = "error"
                if error is None and not flags.allowed_error:
                    error = CellError(
                        index,
                        str(out.get("ename", "")),
                        _strip_ansi(str(out.get("evalue", ""))),
                        tuple(_strip_ansi(line) for line in out.get("traceback", ())),
                    )
        cells.append(_cell_result(index, cell, flags, status, outputs))
    if all(cell.status != "ok" for cell in cells) and error is None:
        return finish(
            "skipped",
            reason="no stored outputs to compare with: the notebook was saved without them",
        )
    return finish("error" if error else "ok", cells=tuple(cells), error=error)


# -- preparing the scratch copy and the kernel ---------------------------------------------


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


def _interpreter_problem(python: Path) -> str | None:
    if not python.exists():
        return f"interpreter {python} does not exist"
    if not os.access(python, os.X_OK) or python.is_dir():
        return f"interpreter {python} is not an executable file"
    return None


def _env_failed(env_name: str, cause: str) -> str:
    return f"the kernel of env {env_name!r} did not start: {cause}"


# What reading a damaged notebook file raises (nbformat's own errors are ValueErrors, or
# jsonschema's ValidationError; JSON of the wrong shape gives the lookup/attribute ones).
_UNREADABLE = (
    OSError,
    ValueError,
    LookupError,
    AttributeError,
    TypeError,
    nbformat.ValidationError,
)


def _read_notebook(path: Path) -> Any:
    # nbformat.read would also validate, which warns (FutureWarning) about cells without ids
    # in older notebooks; execution needs none of it, only the keys read below.
    untyped: Any = nbformat
    nb = untyped.convert(untyped.reader.reads(path.read_text(encoding="utf-8")), 4)
    for cell in nb.cells:
        cell.setdefault("metadata", untyped.NotebookNode())
        cell.setdefault("source", "")
        cell.setdefault("cell_type", "raw")
    return nb


def copy_course(course_root: Path, scratch: Path, ignore: tuple[str, ...], workdir: Path) -> None:
    """Copy the course into `scratch`, leaving out caches, VCS data and virtual envs."""

    def ignored(directory: str, names: list[str]) -> set[str]:
        skip = {name for name in names if any(fnmatch.fnmatch(name, p) for p in ignore)}
        for name in set(names) - skip:
            path = Path(directory, name)
            if path.is_dir() and (
                (path / "pyvenv.cfg").is_file()
                # nbguard's own work tree inside the course would copy into itself forever.
                or workdir == path
                or path in workdir.parents
            ):
                skip.add(name)
        return skip

    _remove_tree(scratch)
    try:
        # Symlinks are followed: a notebook writing through a copied link would reach the
        # original files.
        shutil.copytree(course_root, scratch, ignore=ignored, ignore_dangling_symlinks=True)
    except (OSError, shutil.Error) as exc:
        _remove_tree(scratch)
        raise NbguardError(
            f"cannot copy the course {course_root} into the scratch directory {scratch}: {exc}"
        ) from exc


def _remove_tree(path: Path) -> None:
    """Best effort: a notebook may have left read-only folders behind."""
    if not path.exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        for folder, _dirs, _files in os.walk(path):
            with contextlib.suppress(OSError):
                Path(folder).chmod(0o700)
        shutil.rmtree(path, ignore_errors=True)


# Run before ipykernel when there is a memory limit: sets it (where the platform has
# RLIMIT_AS), then starts ipykernel_launcher as `python -m` would, with its own arguments.
_MEMORY_PRELUDE = (
    "import runpy, sys\n"
    "limit = int(sys.argv.pop(1))\n"
    "try:\n"
    "    import resource\n"
    "except ImportError:\n"
    "    pass\n"
    "else:\n"
    "    hard = resource.getrlimit(resource.RLIMIT_AS)[1]\n"
    "    if hard != resource.RLIM_INFINITY:\n"
    "        limit = min(limit, hard)\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "sys.argv[0] = 'ipykernel_launcher'\n"
    "runpy.run_module('ipykernel_launcher', run_name='__main__', alter_sys=True)\n"
)


def _write_kernelspec(
    workdir: Path, python: Path, memory_limit: int | None = None, offline: bool = False
) -> Path:
    """A kernelspec naming the env's interpreter by absolute path, with warning capture and
    the memory limit, if any."""
    kernels = workdir / "kernels"
    spec_dir = kernels / _KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    # runpy.run_path runs the capture code in a throwaway namespace: nothing reaches the
    # user's. A statement, not an expression, so IPython keeps the returned globals out of
    # Out/_ (a trailing semicolon does not help: exec_lines are not in the history).
    loader = f"if __import__('runpy').run_path({str(_CAPTURE_SOURCE)!r}): pass"
    spec = {
        "argv": [
            *(["unshare", "--net", "--"] if offline else []),
            str(python),
            *(
                ["-m", "ipykernel_launcher"]
                if memory_limit is None
                else ["-c", _MEMORY_PRELUDE, str(memory_limit)]
            ),
            "-f",
            "{connection_file}",
            # Concurrent kernels must not share (and lock) one sqlite history file.
            "--HistoryManager.hist_file=:memory:",
            f"--IPKernelApp.exec_lines={json.dumps([loader])}",
        ],
        "display_name": "nbguard",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return kernels


def _kernel_env(
    course_root: Path, scratch: Path, options: ExecOptions, workdir: Path
) -> dict[str, str]:
    # Nor do a CI job's secrets reach a notebook, unless the config allow-lists them.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED_ENV and (not is_secret(key) or allowed(key, options.pass_env))
    }
    env.update(options.kernel_env)
    # Only what the pipeline asks for (the course root in course-code "path" mode): with
    # "none", a notebook imports the course's modules only as a student without setup could.
    paths: list[str] = []
    for entry in options.python_path:
        try:
            paths.append(str(scratch / entry.resolve().relative_to(course_root)))
        except ValueError:
            paths.append(str(entry))  # outside the course: nothing to map
    if options.kernel_env.get("PYTHONPATH"):
        paths.append(options.kernel_env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # A private IPython profile: no user startup files, no shared state between kernels.
    env["IPYTHONDIR"] = str(workdir / "ipython")
    return env


# -- running the cells ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    nb: Any
    env_name: str
    options: ExecOptions
    python: Path
    cwd: Path
    kernels_dir: Path
    env: dict[str, str]
    workdir: Path


@dataclass
class _Outcome:
    status: RunStatus = "ok"
    cells: tuple[CellResult, ...] = ()
    error: CellError | None = None
    warnings: tuple[WarningRecord, ...] = ()
    reason: str | None = None
    kernel_pid: int | None = None
    later_errors: tuple[CellError, ...] = ()


class _CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `budget` characters of outputs (stream text,
    mime payloads, base64 images) for the whole run, so a notebook printing hundreds of MB
    cannot fill nbguard's memory or its report.

    Outputs past the cap are cut as they arrive: a stream's text is shortened, a rich
    output loses its data (it stays in place, for display ids that point at it). Error
    outputs and nbguard's warning records are always kept. Still held for a moment: each
    single message as the kernel sends it, and data replaced through update_display_data.
    """

    def __init__(self, nb: Any, budget: int | None, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.budget = budget
        self.used = 0
        self.truncated = False

    def output(
        self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> Any:
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or self.budget is None:
            return out
        kind = out.get("output_type")
        if kind == "stream":
            text = _text(out.get("text", ""))
            keep = max(0, self.budget - self.used)
            if len(text) > keep:
                out["text"], self.truncated = text[:keep], True
            self.used += min(len(text), keep)
        elif kind in ("execute_result", "display_data") and CAPTURE_MIME not in out.get("data", {}):
            size = sum(len(_mime_text(mime, v)) for mime, v in out.get("data", {}).items())
            if self.used + size > self.budget:
                out["data"], self.truncated = {}, True
            else:
                self.used += size
        return out


def _truncation_note(budget: int) -> Any:
    untyped: Any = nbformat
    text = f"[nbguard: output truncated at {_size_text(budget)}]\n"
    return untyped.v4.new_output("stream", name="stderr", text=text)


class _Limit:
    """The timeout nbclient asks for before each cell (per-cell limit or what is left)."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def __call__(self, _cell: Any) -> float | None:
        return self.seconds


async def _run(job: _Job) -> _Outcome:
    with contextlib.ExitStack() as stack:
        return await _run_kernel(job, _transport(stack))


def _transport(stack: contextlib.ExitStack) -> dict[str, str]:
    """How the kernel and nbguard talk: Unix sockets where there are any.

    Over TCP, jupyter_client picks free ports by binding and releasing them; between two
    nbguard processes that races (measured: 3 of 288 kernels started together failed, with
    "Address already in use" or by talking to another run's kernel). Socket files in a
    private directory cannot collide. The directory is short because socket paths are
    limited to about 100 bytes.
    """
    if os.name != "posix":
        return {"transport": "tcp"}
    sockets = stack.enter_context(tempfile.TemporaryDirectory(prefix="nbguard-sock-"))
    return {"transport": "ipc", "ip": str(Path(sockets) / "k")}


async def _run_kernel(job: _Job, transport: dict[str, str]) -> _Outcome:
    km = AsyncKernelManager(
        kernel_name=_KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(job.kernels_dir)]),
        connection_file=str(job.workdir / "kernel-connection.json"),
        **transport,
    )
    limit = _Limit()
    client = _CappedClient(
        job.nb,
        job.options.max_output,
        km=km,
        kernel_name=_KERNEL_NAME,
        timeout_func=limit,
        startup_timeout=job.options.startup_timeout,
        shutdown_kernel="immediate",
        allow_errors=False,
        record_timing=False,
    )
    token: int | None = None
    log_path = job.workdir / "kernel.log"
    # The kernel's own stdout/stderr (startup chatter, crash messages) go to a log file, not
    # to nbguard's terminal; what cells print arrives over IOPub.
    with log_path.open("wb") as log:
        try:
            try:
                await km.start_kernel(cwd=str(job.cwd), env=job.env, stdout=log, stderr=log)
            except OSError as exc:
                cause = f"cannot run {job.python}: {exc.strerror or exc}"
                return _Outcome("env-failed", reason=_env_failed(job.env_name, cause))
            provisioner: Any = km.provisioner  # a LocalProvisioner: it knows the process
            token = _register(provisioner.pgid or provisioner.pid)
            kernel_pid = int(provisioner.pid)
            # Started by hand rather than with nbclient's helper, to tell a kernel that died
            # (no ipykernel, broken env) from one that is merely slow.
            client.kc = km.client()
            client.kc.start_channels()
            try:
                await client.kc.wait_for_ready(timeout=job.options.startup_timeout)
            except RuntimeError:
                if _was_killed(token):
                    reason = "the kernel was stopped before it was ready: nbguard was interrupted"
                    return _Outcome("dead-kernel", reason=reason)
                if await km.is_alive():
                    cause = f"no answer within {job.options.startup_timeout:g} s"
                else:
                    cause = _kernel_log_cause(log_path) or "the kernel exited at once"
                return _Outcome("env-failed", reason=_env_failed(job.env_name, cause))
            client.kc.allow_stdin = False  # input() fails at once instead of waiting forever
            outcome = await _run_cells(job, client, km, limit, token)
            outcome.kernel_pid = kernel_pid
            return outcome
        finally:
            await _stop_kernel(km, client)
            if token is not None:
                _unregister(token)


async def _run_cells(job: _Job, client: Any, km: Any, limit: _Limit, token: int | None) -> _Outcome:
    options = job.options
    deadline = None
    if options.notebook_timeout is not None:
        deadline = time.monotonic() + options.notebook_timeout
    outcome = _Outcome()
    cells: list[CellResult] = []
    records: list[WarningRecord] = []
    later: list[CellError] = []
    cascade = _Cascade()
    stopped = False
    noted = False
    executed = 0
    for index, cell in enumerate(job.nb.cells):
        if cell.cell_type != "code":
            continue
        flags = _cell_flags(cell)
        if flags.allowed_error:
            # nbclient lets a cell raise only when it carries its own tag.
            cell.metadata.setdefault("tags", [])
            if "raises-exception" not in cell.metadata["tags"]:
                cell.metadata["tags"].append("raises-exception")

        if stopped:
            cells.append(_cell_result(index, cell, flags, "not-run"))
            continue
        if flags.skip:
            cells.append(_cell_result(index, cell, flags, "skipped"))
            continue

        by_notebook = False
        limit.seconds = options.cell_timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if limit.seconds is None or left < limit.seconds:
                limit.seconds, by_notebook = left, True
        cell.outputs = []
        status: CellStatus = "error"
        failure: _Failure | None = None
        if limit.seconds is not None and limit.seconds <= 0:
            # nbclient reads 0 as "no limit"; the notebook's time is simply up.
            status = "not-run"
            failure = _Failure(
                "timeout",
                CellError(index, "CellTimeoutError", "the notebook ran out of time"),
                f"the notebook did not finish within its {options.notebook_timeout:g} s "
                f"limit: no time was left for cell {index}",
            )
        else:
            executed += 1
            try:
                await client.async_execute_cell(cell, index, execution_count=executed)
            except CellExecutionError as exc:
                error = _cell_error(index, cell.outputs, exc)
                failure = _Failure("error", error, _error_reason(error, options))
            except CellTimeoutError:
                failure = _timeout(index, limit.seconds or 0.0, by_notebook, options)
            except DeadKernelError:
                _reraise_cancellation()
                error = CellError(
                    index, "DeadKernelError", f"the kernel died while cell {index} was running"
                )
                reason = _death_reason(index, km, token)
                if options.memory_limit is not None and not _was_killed(token):
                    reason += (
                        f"; it may have run out of memory: kernels are limited to "
                        f"{_size_text(options.memory_limit)} (memory-limit)"
                    )
                failure = _Failure("dead-kernel", error, reason)
            else:
                # An error output here is one the cell is tagged to raise.
                if not any(out.get("output_type") == "error" for out in cell.outputs):
                    status = "ok"
                    cascade.defined(cell.source)
        if client.truncated and not noted and options.max_output is not None:
            # Once, after the cell whose outputs reached the cap.
            cell.outputs.append(_truncation_note(options.max_output))
            noted = True
        outputs, found = _convert_outputs(index, cell.outputs)
        records.extend(found)
        cells.append(_cell_result(index, cell, flags, status, outputs))
        if failure is None:
            continue
        if outcome.status == "ok":
            # The first failure decides the verdict, whatever comes after it.
            outcome.status, outcome.error, outcome.reason = (
                failure.status,
                failure.error,
                failure.reason,
            )
        elif not cascade.explains(failure.error, cell.source):
            # A later run-ending failure has no `reason` of its own to say what happened
            # (killed by which signal, interrupted): its message says it.
            later.append(replace(failure.error, evalue=failure.reason or failure.error.evalue))
        cascade.failed(cell.source, failure.error)
        # After a timeout the kernel has been stopped, and a dead kernel is gone with all
        # the state the later cells build on: keep-going cannot go on without one.
        stopped = not options.keep_going or failure.status != "error"
    await _cancel_leftover_tasks()
    outcome.cells = tuple(cells)
    outcome.warnings = tuple(records)
    outcome.later_errors = tuple(later)
    return outcome


@dataclass(frozen=True)
class _Failure:
    """Why a cell did not finish: the run's status it implies, the error and the reason."""

    status: RunStatus  # "error", "timeout" or "dead-kernel"
    error: CellError
    reason: str | None = None


def _size_text(size: int) -> str:
    """512 MB, 2 GB, 1.5 GB, 700 bytes: a size as the settings write it (units of 1024)."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} bytes"


def _error_reason(error: CellError, options: ExecOptions) -> str | None:
    """What a cell error means when the exception alone would puzzle a course author."""
    if error.ename == "MemoryError" and options.memory_limit is not None:
        return (
            f"cell {error.cell} ran out of memory: kernels are limited to "
            f"{_size_text(options.memory_limit)} (memory-limit)"
        )
    if error.ename == "StdinNotImplementedError":
        return (
            f"cell {error.cell} asked for keyboard input (input() or getpass), but notebooks "
            "run without stdin; give the value in the notebook instead"
        )
    if error.ename == "SystemExit":
        code = f"({error.evalue})" if error.evalue else "()"
        return f"cell {error.cell} called sys.exit{code}, which ends the notebook"
    return None


def _timeout(index: int, seconds: float, by_notebook: bool, options: ExecOptions) -> _Failure:
    error = CellError(
        index, "CellTimeoutError", f"cell {index} did not finish within {seconds:g} s"
    )
    if by_notebook:
        reason = (
            f"the notebook did not finish within its {options.notebook_timeout:g} s "
            f"limit: cell {index} was still running when it ran out"
        )
    else:
        reason = (
            f"cell {index} did not finish within the per-cell limit of "
            f"{seconds:g} s, so its kernel was stopped"
        )
    return _Failure("timeout", error, reason)


def _cell_error(index: int, outputs: list[Any], exc: CellExecutionError) -> CellError:
    for out in outputs:
        if out.get("output_type") == "error":
            return CellError(
                index,
                str(out.get("ename", exc.ename)),
                _strip_ansi(str(out.get("evalue", exc.evalue))),
                tuple(_strip_ansi(line) for line in out.get("traceback", ())),
            )
    lines = tuple(_strip_ansi(line) for line in str(exc.traceback).splitlines())
    return CellError(index, str(exc.ename), _strip_ansi(str(exc.evalue)), lines)


def _death_reason(index: int, km: Any, token: int | None) -> str:
    if _was_killed(token):
        return f"the kernel was stopped while cell {index} was running: nbguard was interrupted"
    process = getattr(km.provisioner, "process", None)
    code = process.poll() if process is not None else None
    if code is None:
        how = ""
    elif code < 0:
        try:
            how = f" (killed by {signal.Signals(-code).name})"
        except ValueError:
            how = f" (killed by signal {-code})"
    else:
        how = f" (exit code {code})"
    return f"the kernel died while cell {index} was running{how}"


def _reraise_cancellation() -> None:
    # nbclient reports any cancellation of a running cell as a dead kernel. When it is this
    # task being cancelled (Ctrl-C under asyncio.run), let it end so KeyboardInterrupt
    # reaches the caller instead of a made-up result.
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError


async def _cancel_leftover_tasks() -> None:
    # After a timeout nbclient leaves its IOPub reader waiting; it must end before the
    # channels close, or asyncio reports an exception nobody retrieved.
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _stop_kernel(km: Any, client: Any) -> None:
    """Kill the kernel's process group now and release its sockets; never raises."""
    await _cancel_leftover_tasks()
    # Broad on purpose: this runs in `finally` blocks, where a failing cleanup step must
    # neither hide the run's result nor stop the steps after it.
    if client.kc is not None:
        with contextlib.suppress(Exception):
            client.kc.stop_channels()
        client.kc = None
    with contextlib.suppress(Exception):
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        else:
            await km.cleanup_resources()  # the connection file of a kernel that never ran
    # jupyter_client kills the group and reaps the kernel; if it failed to, do it here.
    provisioner = km.provisioner
    process = getattr(provisioner, "process", None)
    if process is not None and process.poll() is None:
        _kill_group(getattr(provisioner, "pgid", None) or process.pid)
        with contextlib.suppress(Exception):
            process.wait(timeout=5)


def _kernel_log_cause(path: Path) -> str | None:
    """The last thing the kernel said before it died: usually why it could not start."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not any(noise in line for noise in _KERNEL_NOISE)
    ]
    return lines[-1] if lines else None


# -- telling later independent errors from the cascade of an earlier one -----------------

# The names a NameError / UnboundLocalError is about, and the attribute an AttributeError
# missed ("name 'x' is not defined", "cannot access local variable 'x' ...").
_MISSING_NAME = re.compile(r"\b(?:name|variable) '(\w+)'")
_MISSING_ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")
# The line of the cell that raised: IPython marks it "----> 3" in the cell's frame, which
# comes first in the traceback.
_FAILING_LINE = re.compile(r"^-+>\s*(\d+)", re.MULTILINE)
# IPython syntax ast cannot read: line magics and shell escapes, alone or assigned.
_IPYTHON_LINE = re.compile(r"^([ \t]*)(?:([\w.\[\], ]+?)[ \t]*=[ \t]*)?[%!].*$", re.MULTILINE)


class _Cascade:
    """The names the failed cells of a run would have defined, so a later error that only
    follows from an earlier failure (NameError: name 'x' is not defined) is not reported
    as a break of its own."""

    def __init__(self) -> None:
        self.undefined: set[str] = set()

    def failed(self, source: str, error: CellError) -> None:
        self.undefined |= _defined_names(source, _failing_line(error))

    def defined(self, source: str) -> None:
        # A name a later cell redefined has a proper value again: an error about it is the
        # later cell's own.
        self.undefined -= _defined_names(source)

    def explains(self, error: CellError, source: str) -> bool:
        """Whether `error`, raised by a cell of `source`, is about a name a failed cell never
        defined: a NameError, or an AttributeError on such a name (`x.mean` where `x` kept a
        placeholder value)."""
        if error.ename in ("NameError", "UnboundLocalError"):
            found = _MISSING_NAME.search(error.evalue)
            return found is not None and found.group(1) in self.undefined
        if error.ename == "AttributeError":
            found = _MISSING_ATTRIBUTE.search(error.evalue)
            tree = _parse(source)
            if found is None or tree is None:
                return False
            return any(
                isinstance(node, ast.Attribute)
                and node.attr == found.group(1)
                and _root_name(node.value) in self.undefined
                for node in ast.walk(tree)
            )
        return False


def _failing_line(error: CellError) -> int | None:
    found = _FAILING_LINE.search("\n".join(error.traceback))
    return int(found.group(1)) if found else None


def _root_name(node: ast.expr) -> str | None:
    """`df` for `df`, `df.a`, `df["a"].b` and `df.a()`: the variable an expression reads."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _parse(source: str) -> ast.Module | None:
    """The cell as Python, magics and shell escapes replaced by statements that keep the
    lines and the names they assign; None for a cell ast cannot read even then."""

    def plain(line: re.Match[str]) -> str:
        indent, target = line.group(1), line.group(2)
        return f"{indent}{target} = None" if target else f"{indent}pass"

    try:
        return ast.parse(_IPYTHON_LINE.sub(plain, source))
    except (SyntaxError, ValueError):  # ValueError: a null byte in the source
        return None


def _defined_names(source: str, from_line: int | None = None) -> set[str]:
    """The names the cell's top-level statements bind, from the one holding `from_line` on
    (the ones before it ran, so their names exist); every statement when it is None."""
    tree = _parse(source)
    if tree is None:
        return set()
    binder = _Binder()
    for statement in tree.body:
        end = statement.end_lineno or statement.lineno
        if from_line is None or end >= from_line:
            binder.visit(statement)
    return binder.names


class _Binder(ast.NodeVisitor):
    """Collects the module-level names a piece of code binds; function and class bodies
    and comprehensions bind their own, except what they declare `global` or assign with
    `:=` (which leaks out of a comprehension)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):  # assignments of every form, for, with-as, :=
            self.names.add(node.id)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.names.add(alias.asname or alias.name.partition(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":  # names unknown without importing the module
                self.names.add(alias.asname or alias.name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.names.add(node.name)
        for expr in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if expr is not None:
                self.visit(expr)
        self._globals(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names.add(node.name)
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        self._globals(node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass  # its parameters and any := inside stay local

    def visit_Global(self, node: ast.Global) -> None:
        self.names.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.names.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.names.add(node.rest)
        self.generic_visit(node)

    def _comprehension(self, node: ast.expr) -> None:
        self.names.update(
            sub.target.id
            for sub in ast.walk(node)
            if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name)
        )

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def _globals(self, body: list[ast.stmt]) -> None:
        for statement in body:
            for sub in ast.walk(statement):
                if isinstance(sub, ast.Global):
                    self.names.update(sub.names)


# -- turning nbformat outputs into model values --------------------------------------------


def _convert_outputs(
    index: int, outputs: list[Any]
) -> tuple[tuple[Output, ...], list[WarningRecord]]:
    converted: list[Output] = []
    records: list[WarningRecord] = []
    for out in outputs:
        kind = str(out.get("output_type", ""))
        if kind == "stream":
            converted.append(Output(kind, {str(out.get("name")): _text(out.get("text", ""))}))
        elif kind == "error":
            converted.append(
                Output(kind, {"ename": str(out.get("ename")), "evalue": str(out.get("evalue"))})
            )
        elif kind in ("execute_result", "display_data"):
            bundle = dict(out.get("data", {}))
            if CAPTURE_MIME in bundle:
                records.extend(_records(index, bundle.pop(CAPTURE_MIME)))
                if not bundle:
                    continue
            converted.append(
                Output(kind, {mime: _mime_text(mime, v) for mime, v in bundle.items()})
            )
        else:
            converted.append(Output(kind, {}))
    return tuple(converted), records


def _records(index: int, payload: Any) -> Iterator[WarningRecord]:
    items = payload.get("warnings", ()) if isinstance(payload, Mapping) else ()
    for item in items:
        package = item.get("package")
        yield WarningRecord(
            cell=index,
            category=str(item.get("category")),
            message=str(item.get("message")),
            package=None if package is None else str(package),
        )


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _mime_text(mime: str, value: Any) -> str:
    if mime == "application/json" or mime.endswith("+json"):
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return _text(value)


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)
