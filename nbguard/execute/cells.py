"""The cell loop: a notebook's code cells run in order on a ready kernel, failures as data."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from nbguard.execute.cascade import Cascade
from nbguard.execute.failures import Failure, kernel_died, no_time_left, raised, timed_out
from nbguard.execute.options import ExecOptions, size_text
from nbguard.execute.outputs import as_text, convert_outputs, is_capture, mime_text
from nbguard.execute.tags import cell_flags, cell_result
from nbguard.model import CellError, CellResult, CellStatus, RunStatus, WarningRecord


@dataclass
class Outcome:
    """What running a notebook's cells on one kernel gave; execute_notebook makes it a run."""

    status: RunStatus = "ok"
    cells: tuple[CellResult, ...] = ()
    error: CellError | None = None
    warnings: tuple[WarningRecord, ...] = ()
    reason: str | None = None
    kernel_pid: int | None = None
    later_errors: tuple[CellError, ...] = ()


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `budget` characters of outputs (stream text,
    mime payloads, base64 images) for the whole run, so a notebook printing hundreds of MB
    cannot fill nbguard's memory or its report; and asks for the timeout in `limit` before
    each cell.

    Outputs past the cap are cut as they arrive: a stream's text is shortened, a rich
    output loses its data (it stays in place, for display ids that point at it). Error
    outputs and nbguard's warning records are always kept. Still held for a moment: each
    single message as the kernel sends it, and data replaced through update_display_data.
    """

    def __init__(self, nb: Any, budget: int | None, capture_key: str, **kwargs: Any) -> None:
        limit = _Limit()
        super().__init__(nb, timeout_func=limit, **kwargs)
        self.limit = limit
        self.capture_key = capture_key  # only records carrying it are the capture's
        self.budget = budget
        self.used = 0
        self.truncated = False
        self.noted = False

    def output(
        self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> Any:
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or self.budget is None:
            return out
        kind = out.get("output_type")
        if kind == "stream":
            text = as_text(out.get("text", ""))
            keep = max(0, self.budget - self.used)
            if len(text) > keep:
                out["text"], self.truncated = text[:keep], True
            self.used += min(len(text), keep)
        elif kind in ("execute_result", "display_data") and not is_capture(
            out.get("data", {}), self.capture_key
        ):
            size = sum(len(mime_text(mime, v)) for mime, v in out.get("data", {}).items())
            if self.used + size > self.budget:
                out["data"], self.truncated = {}, True
            else:
                self.used += size
        return out

    def truncation_note(self) -> Any | None:
        """The stderr output that says outputs were cut: once, after the cell whose outputs
        reached the cap; None before that and after."""
        if not self.truncated or self.noted or self.budget is None:
            return None
        self.noted = True
        untyped: Any = nbformat
        text = f"[nbguard: output truncated at {size_text(self.budget)}]\n"
        return untyped.v4.new_output("stream", name="stderr", text=text)


class _Limit:
    """The timeout nbclient asks for before each cell (per-cell limit or what is left)."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def __call__(self, _cell: Any) -> float | None:
        return self.seconds


async def run_cells(
    nb: Any, options: ExecOptions, client: CappedClient, km: Any, token: int | None
) -> Outcome:
    """Run the code cells of `nb` in order; the first failure decides the outcome, and a
    failure after it counts only if the cascade of earlier failures does not explain it."""
    deadline = None
    if options.notebook_timeout is not None:
        deadline = time.monotonic() + options.notebook_timeout
    outcome = Outcome()
    cells: list[CellResult] = []
    records: list[WarningRecord] = []
    later: list[CellError] = []
    cascade = Cascade()
    limit = client.limit
    stopped = False
    executed = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        flags = cell_flags(cell)
        if flags.allowed_error:
            # nbclient lets a cell raise only when it carries its own tag.
            cell.metadata.setdefault("tags", [])
            if "raises-exception" not in cell.metadata["tags"]:
                cell.metadata["tags"].append("raises-exception")

        if stopped:
            cells.append(cell_result(index, cell, flags, "not-run"))
            continue
        if flags.skip:
            cells.append(cell_result(index, cell, flags, "skipped"))
            continue

        by_notebook = False
        limit.seconds = options.cell_timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if limit.seconds is None or left < limit.seconds:
                limit.seconds, by_notebook = left, True
        cell.outputs = []
        status: CellStatus = "error"
        failure: Failure | None = None
        if limit.seconds is not None and limit.seconds <= 0:
            # nbclient reads 0 as "no limit"; the notebook's time is simply up.
            status = "not-run"
            failure = no_time_left(index, options)
        else:
            executed += 1
            try:
                await client.async_execute_cell(cell, index, execution_count=executed)
            except CellExecutionError as exc:
                failure = raised(index, cell.outputs, exc, options)
            except CellTimeoutError:
                failure = timed_out(index, limit.seconds or 0.0, by_notebook, options)
            except DeadKernelError:
                _reraise_cancellation()
                failure = kernel_died(index, km, token, options)
            else:
                # An error output here is one the cell is tagged to raise.
                if not any(out.get("output_type") == "error" for out in cell.outputs):
                    status = "ok"
                    cascade.defined(cell.source)
        note = client.truncation_note()
        if note is not None:
            cell.outputs.append(note)
        outputs, found = convert_outputs(index, cell.outputs, client.capture_key)
        records.extend(found)
        cells.append(cell_result(index, cell, flags, status, outputs))
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
    await cancel_leftover_tasks()
    outcome.cells = tuple(cells)
    outcome.warnings = tuple(records)
    outcome.later_errors = tuple(later)
    return outcome


async def cancel_leftover_tasks() -> None:
    # After a timeout nbclient leaves its IOPub reader waiting; it must end before the
    # channels close, or asyncio reports an exception nobody retrieved.
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _reraise_cancellation() -> None:
    # nbclient reports any cancellation of a running cell as a dead kernel. When it is this
    # task being cancelled (Ctrl-C under asyncio.run), let it end so KeyboardInterrupt
    # reaches the caller instead of a made-up result.
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError
