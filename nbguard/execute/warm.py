"""Kernels started ahead of need: while a notebook runs, the kernel for the next run of the
same env and options already starts, so its ~0.8 s start-up (mostly idle) overlaps cells."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from nbguard.execute import kernels, session
from nbguard.execute.options import ExecOptions
from nbguard.execute.seat import Seat, prepare


@dataclass(frozen=True)
class Key:
    """What a kernel started ahead must share with the run that takes it: the course, the
    interpreter and every option that shapes the kernel (sandbox, overlay, limits,
    environment); not the papermill parameters, which only the notebook's cells see."""

    course_root: Path
    python: Path
    options: ExecOptions

    @classmethod
    def of(cls, course_root: Path, python: Path, options: ExecOptions) -> Key:
        return cls(course_root, python, replace(options, ahead=0, parameters={}))


_LOCK = threading.Lock()
# Started, not yet taken. Each run starts at most one, so there are never more than --jobs.
_WAITING: list[tuple[Key, Seat, session.Kernel]] = []


def claim(key: Key) -> tuple[Seat, session.Kernel] | None:
    """A kernel started ahead for `key`, now the caller's to run and stop."""
    with _LOCK:
        for index, (waiting_for, seat, kernel) in enumerate(_WAITING):
            if waiting_for == key:
                del _WAITING[index]
                return seat, kernel
    return None


def waiting(key: Key) -> int:
    with _LOCK:
        return sum(waiting_for == key for waiting_for, _, _ in _WAITING)


async def start_ahead(key: Key, workdir: Path, env_name: str) -> None:
    """Start a kernel for the next run of `key`, in a seat of its own at `workdir`, and keep
    it for that run; stopped at once if the audit was stopped meanwhile."""
    since = kernels.generation()
    seat = prepare(key.course_root, key.python, key.options, workdir)
    try:
        kernel = await session.launch(seat, env_name, key.python)
    except BaseException:
        seat.close()
        raise
    if isinstance(kernel, session.Kernel):
        with kernels.unless_killed(since) as alive:
            if alive:
                with _LOCK:
                    _WAITING.append((key, seat, kernel))
                return
        await session.discard(kernel)
    # A kernel that cannot even be started is the next run's to find out and report.
    seat.close()


def release() -> None:
    """Stop every kernel started ahead that no run took: the runs they were for are over."""
    with _LOCK:
        left = list(_WAITING)
        _WAITING.clear()
    for _, seat, kernel in left:
        asyncio.run(session.discard(kernel))
        seat.close()
