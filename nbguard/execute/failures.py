"""Why a cell did not finish: the status it gives the run, and a reason an author can act on."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from nbclient.exceptions import CellExecutionError

from nbguard.ansi import strip_ansi
from nbguard.execute.kernels import was_killed
from nbguard.execute.options import ExecOptions, size_text
from nbguard.execute.outputs import error_of
from nbguard.model import CellError, RunStatus


@dataclass(frozen=True)
class Failure:
    """Why a cell did not finish: the run's status it implies, the error and the reason."""

    status: RunStatus  # "error", "timeout" or "dead-kernel"
    error: CellError
    reason: str | None = None


def raised(
    index: int, outputs: list[Any], exc: CellExecutionError, options: ExecOptions
) -> Failure:
    """Cell `index` raised an exception it was not allowed to."""
    error = _cell_error(index, outputs, exc)
    return Failure("error", error, _error_reason(error, options))


def timed_out(index: int, seconds: float, by_notebook: bool, options: ExecOptions) -> Failure:
    """Cell `index` ran out of its `seconds`: the per-cell limit, or what the notebook's
    limit left it (`by_notebook`)."""
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
    return Failure("timeout", error, reason)


def no_time_left(index: int, options: ExecOptions) -> Failure:
    """The notebook's limit ran out before cell `index` could start."""
    return Failure(
        "timeout",
        CellError(index, "CellTimeoutError", "the notebook ran out of time"),
        f"the notebook did not finish within its {options.notebook_timeout:g} s "
        f"limit: no time was left for cell {index}",
    )


def kernel_died(index: int, km: Any, token: int | None, options: ExecOptions) -> Failure:
    """The kernel died (or was stopped) while cell `index` was running."""
    error = CellError(index, "DeadKernelError", f"the kernel died while cell {index} was running")
    reason = _death_reason(index, km, token)
    if options.memory_limit is not None and not was_killed(token):
        reason += (
            f"; it may have run out of memory: kernels are limited to "
            f"{size_text(options.memory_limit)} (memory-limit)"
        )
    return Failure("dead-kernel", error, reason)


def _cell_error(index: int, outputs: list[Any], exc: CellExecutionError) -> CellError:
    for out in outputs:
        if out.get("output_type") == "error":
            return error_of(index, out, str(exc.ename), str(exc.evalue))
    lines = tuple(strip_ansi(line) for line in str(exc.traceback).splitlines())
    return CellError(index, str(exc.ename), strip_ansi(str(exc.evalue)), lines)


def _error_reason(error: CellError, options: ExecOptions) -> str | None:
    """What a cell error means when the exception alone would puzzle a course author."""
    if error.ename == "MemoryError" and options.memory_limit is not None:
        return (
            f"cell {error.cell} ran out of memory: kernels are limited to "
            f"{size_text(options.memory_limit)} (memory-limit)"
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


def _death_reason(index: int, km: Any, token: int | None) -> str:
    if was_killed(token):
        return f"the kernel was stopped while cell {index} was running: nbguard was interrupted"
    process = getattr(km.provisioner, "process", None)
    code = process.poll() if process is not None else None
    if code is not None and code > 128 and _sandboxed(process):
        code = 128 - code  # bubblewrap exits 128 + n when the kernel was killed by signal n
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


def _sandboxed(process: Any) -> bool:
    args = getattr(process, "args", None)
    return isinstance(args, list | tuple) and bool(args) and str(args[0]).endswith("bwrap")
