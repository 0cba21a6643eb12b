"""One kernel's life for one notebook: started, handed to the cell loop, always stopped."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from nbguard.execute.cells import CappedClient, Outcome, cancel_leftover_tasks, run_cells
from nbguard.execute.kernels import kill_group, register, unregister, was_killed
from nbguard.execute.launch import KERNEL_NAME, env_failed, kernel_log_cause
from nbguard.execute.options import ExecOptions


@dataclass(frozen=True)
class Job:
    """A notebook ready to run: where, in which interpreter, with what environment."""

    nb: Any
    env_name: str
    options: ExecOptions
    python: Path
    cwd: Path
    kernels_dir: Path
    env: dict[str, str]
    workdir: Path
    connection: dict[str, str]  # launch.transport's choice
    capture_key: str  # only warning records carrying it are the capture's own


async def run(job: Job) -> Outcome:
    return await _run_kernel(job, job.connection)


async def _run_kernel(job: Job, connection: dict[str, str]) -> Outcome:
    km = AsyncKernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(job.kernels_dir)]),
        connection_file=str(job.workdir / "kernel-connection.json"),
        **connection,
    )
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
                return Outcome("env-failed", reason=env_failed(job.env_name, cause))
            provisioner: Any = km.provisioner  # a LocalProvisioner: it knows the process
            token = register(provisioner.pgid or provisioner.pid)
            kernel_pid = int(provisioner.pid)
            # Started by hand rather than with nbclient's helper, to tell a kernel that died
            # (no ipykernel, broken env) from one that is merely slow.
            client.kc = km.client()
            client.kc.start_channels()
            try:
                await client.kc.wait_for_ready(timeout=job.options.startup_timeout)
            except RuntimeError:
                if was_killed(token):
                    reason = "the kernel was stopped before it was ready: nbguard was interrupted"
                    return Outcome("dead-kernel", reason=reason)
                if await km.is_alive():
                    cause = f"no answer within {job.options.startup_timeout:g} s"
                else:
                    cause = kernel_log_cause(log_path) or "the kernel exited at once"
                return Outcome("env-failed", reason=env_failed(job.env_name, cause))
            client.kc.allow_stdin = False  # input() fails at once instead of waiting forever
            outcome = await run_cells(job.nb, job.options, client, km, token)
            outcome.kernel_pid = kernel_pid
            return outcome
        finally:
            await _stop_kernel(km, client)
            if token is not None:
                unregister(token)


async def _stop_kernel(km: Any, client: Any) -> None:
    """Kill the kernel's process group now and release its sockets; never raises."""
    await cancel_leftover_tasks()
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
        kill_group(getattr(provisioner, "pgid", None) or process.pid)
        with contextlib.suppress(Exception):
            process.wait(timeout=5)
