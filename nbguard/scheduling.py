"""Which queued run a free kernel slot takes next: the longest expected first, whatever its env.

A run's expected duration is what the same run took before (the execution cache keeps it,
--no-cache included); a run never seen before (a new or edited notebook, a new env) counts
as the longest, since it may be. Queued in arrival order, the second env's runs would wait
behind every run of the first, and a notebook's volatile re-run (queued only once both its
runs are in) would start last and run alone: the longest-first order keeps every slot busy
until the end.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class LongestFirst:
    """Work run on `pool`'s workers, the longest expected first when a worker frees up.

    Each `submit` queues one item and one pool task; the task takes whichever queued item
    is longest at the moment it starts, so every item runs exactly once, at most as many
    at once as the pool has workers.
    """

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._queued: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def submit(
        self, expected_s: float | None, work: Callable[[], T], future: Future[T] | None = None
    ) -> Future[T]:
        """`work()` queued with its expected duration (None: unknown, taken as the longest);
        equal ones in the order submitted. Its result goes to `future` when given (one
        handed out before the work could be queued), else to a new one."""
        future = Future() if future is None else future

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return  # cancelled while queued
            try:
                future.set_result(work())
            except BaseException as exc:  # the future carries it, as the pool's own would
                future.set_exception(exc)

        rank = -math.inf if expected_s is None else -expected_s
        with self._lock:
            heapq.heappush(self._queued, (rank, next(self._order), run))
        self._pool.submit(self._next)
        return future

    def _next(self) -> None:
        with self._lock:
            _, _, run = heapq.heappop(self._queued)
        run()
