"""One kernel's life: started in a seat, handed a notebook and the cell loop, always stopped."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from nbguard.execute.cells import CappedClient, Outcome, cancel_leftover_tasks, run_cells
from nbguard.execute.kernels import kill_group, register, unregister, was_killed
from nbguard.execute.launch import KERNEL_NAME, env_failed, kernel_log_cause
from nbguard.execute.options import ExecOptions
from nbguard.execute.seat import Seat

_POLL_S = 0.5  # how often a wait for the kernel checks that it still lives
# jupyter_client's and nbclient's objects are traitlets classes whose `Type` traits turn the
# class names they default to into classes on first use, shared by the class and unguarded:
# two threads making the first ones at once can see each other's half-done swap ("TypeError:
# import_item accepts strings, not MetaHasTraits", an audit's run lost to nbguard's own
# error). They are made one at a time; each takes a millisecond.
_MAKING = threading.Lock()


@dataclass(frozen=True)
class Job:
    """A notebook ready to run: which, in which env's interpreter, in which folder."""

    nb: Any
    env_name: str
    options: ExecOptions
    python: Path
    cwd: Path  # the notebook's folder in its seat's copy of the course
    capture_key: str  # only warning records carrying it are the capture's own


@dataclass(frozen=True)
class Kernel:
    """A kernel process started in a seat and not yet talked to; `run` or `discard` stops it."""

    km: AsyncKernelManager  # usable from any thread's event loop until talked to
    token: int
    pid: int
    log_path: Path


async def launch(seat: Seat, env_name: str, python: Path) -> Kernel | Outcome:
    """Start the seat's kernel in its copy of the course; the notebook's folder is entered
    later (`run`), so a kernel can start before the notebook it serves is known."""
    with _MAKING:
        km = AsyncKernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(seat.kernels_dir)]),
            connection_file=str(seat.workdir / "kernel-connection.json"),
            **seat.connection,
        )
    log_path = seat.workdir / "kernel.log"
    # The kernel's own stdout/stderr (startup chatter, crash messages) go to a log file, not
    # to nbguard's terminal; what cells print arrives over IOPub. The child holds its own
    # copy of the file, so nbguard's is closed at once.
    with log_path.open("wb") as log:
        try:
            await km.start_kernel(cwd=str(seat.scratch), env=seat.env, stdout=log, stderr=log)
        except OSError as exc:
            await _stop_kernel(km, None)
            cause = f"cannot run {python}: {exc.strerror or exc}"
            return Outcome("env-failed", reason=env_failed(env_name, cause))
    provisioner: Any = km.provisioner  # a LocalProvisioner: it knows the process
    token = register(provisioner.pgid or provisioner.pid)
    return Kernel(km, token, int(provisioner.pid), log_path)


async def run(
    job: Job, kernel: Kernel, ahead: Callable[[], Awaitable[None]] | None = None
) -> Outcome:
    """The job's cells on `kernel`, which is always stopped; `ahead` runs once the kernel is
    ready, before the first cell (it starts the next run's kernel)."""
    km = kernel.km
    with _MAKING:
        client = CappedClient(
            job.nb,
            job.options.max_output,
            job.capture_key,
            km=km,
            kernel_name=KERNEL_NAME,
            startup_timeout=job.options.startup_timeout,
            shutdown_kernel="immediate",
            allow_errors=False,
            record_timing=False,
        )
    try:
        # Started by hand rather than with nbclient's helper, to tell a kernel that died
        # (no ipykernel, broken env) from one that is merely slow.
        with _MAKING:
            client.kc = km.client()
        client.kc.start_channels()
        try:
            await client.kc.wait_for_ready(timeout=job.options.startup_timeout)
            await _enter(client.kc, kernel, job.cwd, job.options.startup_timeout)
        except RuntimeError:
            if was_killed(kernel.token):
                reason = "the kernel was stopped before it was ready: nbguard was interrupted"
                return Outcome("dead-kernel", reason=reason)
            if await km.is_alive():
                cause = f"no answer within {job.options.startup_timeout:g} s"
            else:
                cause = kernel_log_cause(kernel.log_path) or "the kernel exited at once"
            return Outcome("env-failed", reason=env_failed(job.env_name, cause))
        client.kc.allow_stdin = False  # input() fails at once instead of waiting forever
        if ahead is not None:
            await ahead()
        outcome = await run_cells(job.nb, job.options, client, km, kernel.token)
        outcome.kernel_pid = kernel.pid
        return outcome
    finally:
        await _stop_kernel(km, client)
        unregister(kernel.token)


async def discard(kernel: Kernel) -> None:
    """Stop a kernel no run took."""
    await _stop_kernel(kernel.km, None)
    unregister(kernel.token)


async def _enter(kc: Any, kernel: Kernel, folder: Path, timeout: float) -> None:
    """Make `folder` the kernel's working directory, leaving no trace a notebook could see:
    silent, so no execution count, no history, no output; no name bound. Gives up at once
    when the kernel dies or is killed (Ctrl-C), not only after `timeout`."""
    msg_id = kc.execute(
        f"__import__('os').chdir({str(folder)!r})", silent=True, store_history=False
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await kc.get_shell_msg(timeout=_POLL_S)
        except queue.Empty:
            if was_killed(kernel.token) or not await kernel.km.is_alive():
                raise RuntimeError("the kernel is gone") from None
            if time.monotonic() > deadline:
                raise RuntimeError("no answer") from None
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    if reply["content"].get("status") != "ok":
        raise RuntimeError(f"cannot enter {folder}: {reply['content'].get('evalue')}")


async def _stop_kernel(km: Any, client: Any | None) -> None:
    """Kill the kernel's process group now and release its sockets; never raises."""
    await cancel_leftover_tasks()
    # Broad on purpose: this runs in `finally` blocks, where a failing cleanup step must
    # neither hide the run's result nor stop the steps after it.
    if client is not None and client.kc is not None:
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
        kill_group(getattr(provisioner, "pgid", None) or process.pid)
        with contextlib.suppress(Exception):
            process.wait(timeout=5)
