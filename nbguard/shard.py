"""Which notebooks shard K of N runs: a stable hash of each path, or balanced by an earlier
report's durations, the same answer on every CI machine."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbguard.errors import ConfigError
from nbguard.model import Notebook
from nbguard.report import json_report

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse(text: str) -> tuple[int, int]:
    """ "K/N" as (K, N), 1 ≤ K ≤ N; ValueError saying why not."""
    found = _SHARD.match(text)
    if found is None:
        raise ValueError("K/N, shard K of N, e.g. 1/2")
    index, count = int(found.group(1)), int(found.group(2))
    if not 1 <= index <= count:
        raise ValueError(f"K/N with 1 ≤ K ≤ N (got {index}/{count})")
    return index, count


def select(
    notebooks: Sequence[Notebook], shard: str, durations: Mapping[str, float] | None = None
) -> tuple[Notebook, ...]:
    """The notebooks of `shard` ("K/N"): every notebook is in exactly one shard of N, whoever
    asks, as long as they see the same notebooks and the same `durations`."""
    index, count = parse(shard)
    owner = assign([nb.path for nb in notebooks], count, durations)
    return tuple(nb for nb in notebooks if owner[nb.path] == index)


def assign(
    paths: Sequence[str], count: int, durations: Mapping[str, float] | None = None
) -> dict[str, int]:
    """Each path's shard (1..count).

    Without durations, a hash of the path: a notebook keeps its shard when others come and
    go, and shards hold about as many notebooks each. With durations (seconds, from an
    earlier report), the longest first onto the least loaded shard, so shards take about
    as long; a notebook the report does not know weighs the average.
    """
    if not durations:
        return {path: _hash(path) % count + 1 for path in paths}
    known = [durations[path] for path in paths if path in durations]
    average = sum(known) / len(known) if known else 1.0
    weight = {path: durations.get(path, average) for path in paths}
    loads = [0.0] * count
    owner: dict[str, int] = {}
    for path in sorted(paths, key=lambda p: (-weight[p], _hash(p), p)):
        lightest = min(range(count), key=lambda shard: (loads[shard], shard))
        loads[lightest] += weight[path]
        owner[path] = lightest + 1
    return owner


def durations(report: Mapping[str, Any]) -> dict[str, float]:
    """Seconds each notebook of a JSON report took, over all its runs."""
    found: dict[str, float] = {}
    for nb in report.get("notebooks") or []:
        runs = (nb.get("runs") or {}).values()
        found[str(nb["path"])] = sum(float(run.get("duration_s") or 0.0) for run in runs)
    return found


def durations_from(path: Path) -> dict[str, float]:
    """The durations of the report at `path`; one line when it is not a report."""
    try:
        return durations(json_report.read(path))
    except ConfigError as exc:
        raise ConfigError(f"shard durations: {exc}") from None


def _hash(path: str) -> int:
    # Not hash(): Python salts it per process, and every shard must agree.
    return int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big")
