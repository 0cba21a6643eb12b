"""Cold and warm wall time (and peak memory) of `nbguard run` on the demo course.

    python benchmarks/audit.py [--jobs N] [--repeat K] [--offline WHEELHOUSE]

Cold: an empty env cache, so both envs are resolved and installed. Warm: the same cache
again, so envs are reused and only the upcoming env is re-resolved. Each run is a separate
process, timed from outside, on a fresh copy of the course.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(course: Path, cache: Path, jobs: int, extra: list[str]) -> float:
    argv = [sys.executable, "-m", "nbguard", "run", str(course), "--cache-dir", str(cache)]
    argv += ["--jobs", str(jobs), "--report", str(course.parent / "report.json"), *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"nbguard failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs to take the median of")
    parser.add_argument(
        "--offline", type=Path, help="wheelhouse with ipykernel: run with --no-index"
    )
    args = parser.parse_args()
    extra = ["--no-index", "--find-links", str(args.offline)] if args.offline else []

    with tempfile.TemporaryDirectory(prefix="nbguard-bench-") as tmp:
        root = Path(tmp)
        course = root / "demo-course"
        shutil.copytree(REPO / "fixtures" / "demo-course", course)
        subprocess.run(
            [sys.executable, str(REPO / "fixtures" / "build_wheels.py"), str(root / "wheels")],
            check=True,
            capture_output=True,
        )
        cache = root / "cache"
        cold = _run(course, cache, args.jobs, extra)
        warm = [_run(course, cache, args.jobs, extra) for _ in range(args.repeat)]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    notebooks = len(list((REPO / "fixtures" / "demo-course").rglob("*.ipynb")))
    print(f"demo course: {notebooks} notebooks x 2 envs, --jobs {args.jobs}")
    print(f"cold run (empty env cache): {cold:6.1f} s")
    each = ", ".join(f"{w:.1f}" for w in warm)
    print(f"warm run (median of {args.repeat}):   {statistics.median(warm):6.1f} s  ({each})")
    print("peak RSS of the largest process (nbguard or a kernel): ", end="")
    print(f"{peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
