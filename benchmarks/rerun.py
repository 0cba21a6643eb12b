"""What the execution cache saves on any course: a cold run, a second run with nothing
changed, and a run after one notebook's code changed.

    python benchmarks/rerun.py COURSE [--cache-dir DIR] [--reports DIR] [-- NBGUARD ARGS...]

The course is copied first (the edit is made to the copy; the course is only read). Run 1
executes every notebook (`--no-cache`, so the envs may be warm but no run is reused), run 2
changes nothing, run 3 follows a new code cell appended to one notebook that ran in every
env. Each run is a separate `nbguard run` process, timed from outside (wall time). Prints
the ratios the execution cache is judged by: run 2 / run 1 (bar: 0.05) and run 3 against
that one notebook's own runs in run 1 (bar: about that), and checks that runs 1 and 2 give
the same verdicts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell

from nbguard import settings

_IGNORED = shutil.ignore_patterns(".git", ".nbguard", ".ipynb_checkpoints", "__pycache__", ".venv")


def _run(course: Path, report: Path, extra: list[str]) -> tuple[float, dict[str, Any]]:
    argv = [sys.executable, "-m", "nbguard", "run", str(course), "--report", str(report), *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"nbguard failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return elapsed, data


def _runs(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        run
        for nb in report["notebooks"]
        for env, run in nb["runs"].items()
        if env != "stored" and run["status"] != "skipped"
    ]


def _cached(report: dict[str, Any]) -> str:
    runs = _runs(report)
    return f"{sum(bool(run.get('cached')) for run in runs)}/{len(runs)} runs from the cache"


def _verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {nb["path"]: nb["verdict"] for nb in report["notebooks"]}


def _copy(source: Path, root: Path) -> Path:
    """The course copied under `root`, with its local --find-links folders outside it
    linked at the same relative place (a config's "../wheels" still finds them)."""
    course = root / source.name
    shutil.copytree(source, course, symlinks=True, ignore=_IGNORED)
    for link in settings.load(source).find_links:
        where = Path(link)
        if "://" in link or not where.is_dir() or where.is_relative_to(source):
            continue
        try:
            relative = where.relative_to(source.parent)
        except ValueError:
            continue  # not next to the course: an absolute path the copy finds as well
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).symlink_to(where)
    return course


def _edit_one(course: Path, report: dict[str, Any]) -> tuple[str, float]:
    """Append a code cell to the quickest notebook that ran in every env; its path and
    what its runs cost in `report`."""
    candidates = [
        (sum(run["duration_s"] for run in nb["runs"].values()), nb["path"])
        for nb in report["notebooks"]
        if nb["runs"] and all(run["status"] in ("ok", "error") for run in nb["runs"].values())
    ]
    if not candidates:
        raise SystemExit("no notebook ran in every env: nothing to edit")
    cost, path = min(candidates)
    untyped: Any = nbformat
    nb = untyped.read(course / path, as_version=4)
    nb.cells.append(new_code_cell("_nbguard_rerun_benchmark = 1"))
    untyped.write(nb, course / path)
    return path, cost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("course", type=Path)
    parser.add_argument("--cache-dir", type=Path, help="nbguard's cache (default: a new one)")
    parser.add_argument("--reports", type=Path, help="keep the three JSON reports here")
    parser.add_argument("nbguard_args", nargs="*", help="more `nbguard run` arguments (after --)")
    args = parser.parse_args()
    source = args.course.resolve()

    with tempfile.TemporaryDirectory(prefix="nbguard-rerun-") as tmp:
        root = Path(tmp)
        course = _copy(source, root)
        reports = (args.reports or root / "reports").resolve()
        reports.mkdir(parents=True, exist_ok=True)
        cache = (args.cache_dir or root / "cache").resolve()
        extra = ["--cache-dir", str(cache), *args.nbguard_args]

        first, one = _run(course, reports / "run1.json", [*extra, "--no-cache"])
        print(f"run 1 (every notebook executed): {first:7.1f}s  {_cached(one)}")
        second, two = _run(course, reports / "run2.json", extra)
        print(f"run 2 (nothing changed):         {second:7.1f}s  {_cached(two)}")
        edited, cost = _edit_one(course, two)
        third, three = _run(course, reports / "run3.json", extra)
        print(f"run 3 (one notebook edited):     {third:7.1f}s  {_cached(three)}  [{edited}]")

    same = _verdicts(one) == _verdicts(two)
    print(f"run 2 / run 1: {second / first:.3f}  (bar: 0.05; same verdicts: {same})")
    print(
        f"run 3 - run 2: {third - second:.1f}s; that notebook's two runs took {cost:.1f}s in run 1"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
