"""The kernels running now (and the course copies under way), so an interrupted run can stop
them all from any thread."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
from collections.abc import Iterator

# The only state shared between worker threads.
_LIVE_LOCK = threading.RLock()  # re-entrant: a signal handler may run on a thread holding it
_LIVE: dict[int, int] = {}  # token -> process group of a kernel still running
_KILLED: set[int] = set()  # tokens kill_all_kernels stopped, so the run can say why
_TOKENS = itertools.count(1)
_COPIES: set[threading.Event] = set()  # set() on each asks a course copy under way to stop
# Counts kill_all_kernels calls: a kernel started ahead of need under an earlier count was
# started for a run that has been stopped, and is stopped too (warm.offer).
_GENERATION = [0]


def kill_all_kernels() -> None:
    """Kill every kernel still running (its whole process group) and stop the course copies
    under way; safe from any thread."""
    with _LIVE_LOCK:
        _GENERATION[0] += 1
        for token, group in list(_LIVE.items()):
            _KILLED.add(token)
            kill_group(group)
        for stop in _COPIES:
            stop.set()


@contextlib.contextmanager
def copying() -> Iterator[threading.Event]:
    """An event kill_all_kernels sets while this copy of the course is under way."""
    stop = threading.Event()
    with _LIVE_LOCK:
        _COPIES.add(stop)
    try:
        yield stop
    finally:
        with _LIVE_LOCK:
            _COPIES.discard(stop)


def generation() -> int:
    """How many times kill_all_kernels ran: compare before and after starting a kernel."""
    with _LIVE_LOCK:
        return _GENERATION[0]


@contextlib.contextmanager
def unless_killed(since: int) -> Iterator[bool]:
    """Whether kill_all_kernels has not run since generation `since`; it cannot run (nor
    kill what is being kept) until the block ends."""
    with _LIVE_LOCK:
        yield _GENERATION[0] == since


def register(group: int) -> int:
    """Note a started kernel's process group; the token given back unregisters it."""
    with _LIVE_LOCK:
        token = next(_TOKENS)
        _LIVE[token] = group
        return token


def unregister(token: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(token, None)
        _KILLED.discard(token)


def was_killed(token: int | None) -> bool:
    """Whether kill_all_kernels stopped this kernel (rather than the notebook killing it)."""
    with _LIVE_LOCK:
        return token is not None and token in _KILLED


def kill_group(group: int) -> None:
    # The kernel leads its own session (jupyter_client starts it with start_new_session), so
    # the group holds the kernel and whatever it spawned (multiprocessing pools, servers).
    with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
        os.killpg(group, signal.SIGKILL)  # AttributeError: no process groups on Windows
