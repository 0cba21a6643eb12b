"""What `--blame` adds to a run's wall time on any course: plain, cold probes, warm probes.

    python benchmarks/blame.py COURSE --cache-dir DIR [--jobs N] [--seed-cache DIR]
                               [--skip-warmup] [--reps N] [-- extra nbguard run options]

DIR is the benchmark's own env cache (its probe envs are deleted): give a fresh folder, and
with --seed-cache a cache holding the course's built envs, which are copied in (hard links)
so the course envs need not be built again. First a plain run builds (or checks) the course's
envs, untimed unless --skip-warmup; then, each a separate process timed from outside:

  plain   `nbguard run COURSE`, envs built
  cold    `nbguard run COURSE --blame` after deleting every probe env, probe lock, blame and
          probe bytecode of DIR (the course's envs stay; uv's own download cache stays warm:
          it is not nbguard's probe cache)
  warm    the same again: probes and blames answered from DIR
  plain   once more: each blame is set against the mean of the plain runs either side of
          it (the load of a shared machine moves)

With --reps N the cold, warm and plain runs repeat N times (probes deleted before each
cold run) and the medians are printed.

It prints the seconds, what blame added over plain as a ratio (issue 10's bar: at most 1.5x
cold, 0.2x warm), how many culprits the cold run confirmed, and each notebook's culprit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COLD_BAR, WARM_BAR = 1.5, 0.2


def _run(course: Path, cache: Path, report: Path, jobs: int | None, extra: list[str]) -> float:
    argv = [sys.executable, "-m", "nbguard", "run", str(course), "--cache-dir", str(cache)]
    argv += ["--report", str(report), *extra]
    if jobs is not None:
        argv += ["--jobs", str(jobs)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    # The load beside each time: on a shared machine it moves the times more than any change.
    print(f"  {report.stem}: {elapsed:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"nbguard failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def _forget_probes(cache: Path) -> int:
    """Delete the probe envs, the probes' locks and the finished blames; the number of envs."""
    removed = 0
    for marker in (cache / "envs").glob("*/nbguard-env.json"):
        try:
            name = json.loads(marker.read_text(encoding="utf-8")).get("env", "")
        except (OSError, json.JSONDecodeError):
            continue
        if str(name).endswith("-probe"):
            if marker.parent.is_symlink():  # published by a symlink swap: the link and its env
                target = marker.parent.resolve()
                marker.parent.unlink()
                shutil.rmtree(target, ignore_errors=True)
            else:
                shutil.rmtree(marker.parent, ignore_errors=True)
            marker.parent.with_suffix(".lock").unlink(missing_ok=True)
            removed += 1
    for lock in (cache / "locks").glob("variant-*"):
        lock.unlink(missing_ok=True)
    shutil.rmtree(cache / "blame", ignore_errors=True)
    shutil.rmtree(cache / "bytecode", ignore_errors=True)  # what probe envs compiled
    return removed


def _culprits(report: Path) -> tuple[list[tuple[str, str, str, str]], int]:
    """(notebook, verdict, culprit, evidence) of each broken or changed notebook; confirmed."""
    data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    rows = []
    for notebook in data["notebooks"]:
        if notebook["verdict"] not in ("broken", "changed"):
            continue
        culprit = notebook.get("culprit") or {}
        rows.append(
            (
                notebook["path"],
                notebook["verdict"],
                culprit.get("package", "-"),
                culprit.get("evidence", "-"),
            )
        )
    return rows, sum(row[3] == "confirmed" for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("course", type=Path)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--seed-cache", type=Path, help="a cache with the course's envs built")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--skip-warmup", action="store_true", help="the envs are built already")
    parser.add_argument("--reps", type=int, default=1, help="cold and warm blames, alternating")
    # After "--": more `nbguard run` options, e.g. `-- --no-cache` (argparse would take them
    # for its own, or refuse them after a positional).
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:cut]), argv[cut + 1 :]
    course, cache = args.course.resolve(), args.cache_dir.resolve()
    if args.seed_cache is not None and not (cache / "envs").exists():
        for part in ("envs", "locks"):
            if (args.seed_cache / part).is_dir():
                shutil.copytree(args.seed_cache / part, cache / part, copy_function=_link)
    reports = cache.parent / f"{cache.name}-reports"
    reports.mkdir(parents=True, exist_ok=True)

    def timed(name: str, *blame: str) -> float:
        return _run(course, cache, reports / f"{name}.json", args.jobs, [*extra, *blame])

    if not args.skip_warmup:
        timed("warmup")
    # Each rep: plain, cold, warm, with a plain after the last: each blame is set against the
    # mean of the plain runs on either side of it (on a shared machine the load moves).
    plains = [timed("plain")]
    colds: list[float] = []
    warms: list[float] = []
    removed = 0
    for _ in range(args.reps):
        removed = _forget_probes(cache)
        colds.append(timed("cold", "--blame"))
        warms.append(timed("warm", "--blame"))
        plains.append(timed("plain-again"))
    around = [(a + b) / 2 for a, b in itertools.pairwise(plains)]
    cold_x = [(cold - plain) / plain for cold, plain in zip(colds, around, strict=True)]
    warm_x = [(warm - plain) / plain for warm, plain in zip(warms, around, strict=True)]
    plain, cold = statistics.median(around), statistics.median(colds)
    warm = statistics.median(warms)
    rows, confirmed = _culprits(reports / "cold.json")
    print(
        f"{course.name}: plain {plain:.1f} s (envs built; "
        f"{', '.join(f'{p:.1f}' for p in plains)} s)"
    )
    print(
        f"cold probes ({removed} probe envs deleted; uv's download cache stays warm): "
        f"{cold:.1f} s, blame added {statistics.median(cold_x):.2f}x plain, median of "
        f"{args.reps} ({', '.join(f'{x:.2f}' for x in cold_x)}) "
        f"(bar {COLD_BAR}x: {'met' if statistics.median(cold_x) <= COLD_BAR else 'not met'})"
    )
    print(
        f"warm probes: {warm:.1f} s, blame added {statistics.median(warm_x):.2f}x plain "
        f"({', '.join(f'{x:.2f}' for x in warm_x)}) "
        f"(bar {WARM_BAR}x: {'met' if statistics.median(warm_x) <= WARM_BAR else 'not met'})"
    )
    print(f"confirmed {confirmed} of {len(rows)} broken or changed notebooks (cold run):")
    for path, verdict, package, evidence in rows:
        print(f"  {path}: {verdict}, {package} ({evidence})")
    print(f"reports: {reports}")
    return 0


def _link(source: str, target: str) -> None:
    # Hard links: a seeded env costs no copy, and its files keep the mtimes its manifest has.
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


if __name__ == "__main__":
    sys.exit(main())
