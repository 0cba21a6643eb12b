"""nbguard against nbmake on a 30-notebook corpus (or any course), and nbguard's own memory.

    python benchmarks/corpus.py [--course DIR] [--reps 3] [--jobs N] [--mode first|no-cache]
                                [--rss-notebooks 200]

The corpus (issue 13): 10 trivial notebooks, 10 that use numpy, pandas and matplotlib and
draw a plot, 10 that sleep one second; a pinned `requirements.txt` (locked) and a loose
`requirements.in` (upcoming). A first, untimed `nbguard run` builds both envs; then each
env's pins go into a bench venv of their own with nbmake and pytest-xdist (nbmake runs
notebooks in the interpreter pytest runs in, so it runs once per env, as a course would).
Then, alternating, `reps` times: `nbguard run` (its default --jobs unless given) as a
course's first audit (no stored run to reuse; `--mode no-cache`: every notebook executed
in every env, none taken from another env's run) and `pytest --nbmake -n 4` in each bench
venv. Printed: the medians, nbguard / nbmake, and
nbguard against the CPU-bound limit (the CPU seconds nbguard and its kernels used, divided
by the cores: no schedule on this machine can beat it). Last, the peak RSS of the nbguard
process itself on a course of `rss-notebooks` trivial notebooks.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOCKED = "numpy==1.26.4\npandas==2.2.2\nmatplotlib==3.8.4\n"
LOOSE = "numpy\npandas\nmatplotlib\n"
TRIVIAL = ["x = 6 * 7", "print(x)", "x"]
SCIENTIFIC = [
    "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt",
    "frame = pd.DataFrame({'t': np.arange(20), 'y': np.arange(20) ** 2 / 7})\n"
    "frame.describe().round(3)",
    "fig, ax = plt.subplots(figsize=(3, 2))\nax.plot(frame.t, frame.y)\nplt.show()",
]
SLEEPING = ["import time\ntime.sleep(1)", "print('slept')"]


def notebook(cells: Sequence[str]) -> dict[str, object]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{index}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for index, source in enumerate(cells)
        ],
    }


def write_corpus(root: Path, trivial: int, scientific: int, sleeping: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text(LOCKED, encoding="utf-8")
    (root / "requirements.in").write_text(LOOSE, encoding="utf-8")
    for kind, count, cells in (
        ("trivial", trivial, TRIVIAL),
        ("scientific", scientific, SCIENTIFIC),
        ("sleeping", sleeping, SLEEPING),
    ):
        for number in range(count):
            path = root / kind / f"{kind}_{number:03d}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(notebook(cells)), encoding="utf-8")
    return root


@dataclass(frozen=True)
class Timed:
    wall_s: float
    cpu_s: float  # the process's and its reaped children's user + system seconds
    peak_rss_mb: float  # the process's own high-water mark (not its children's)
    returncode: int
    stderr: str


_CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def cpu_group() -> Path | None:
    """A cgroup (v1 cpuacct) of its own for the timed process and all its descendants: a
    sandboxed kernel dies in its pid namespace, unreaped by nbguard, and its CPU time would
    be lost to RUSAGE_CHILDREN. None where there is no such cgroup to make."""
    group = _CPUACCT / f"nbguard-bench-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
    except OSError:
        return None
    return group


def adopt_orphans() -> None:
    """Become the child subreaper: a kernel killed in its sandbox (pid namespace) is orphaned,
    and only a reaped process's CPU time reaches RUSAGE_CHILDREN."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def timed(argv: Sequence[str], cwd: Path | None = None) -> Timed:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    group = cpu_group()

    def enter_group() -> None:
        if group is not None:
            (group / "tasks").write_text(str(os.getpid()))

    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=enter_group,  # before the watcher thread starts
    )
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        # VmHWM is the process's own peak, so the last sample before it exits is the max.
        status = Path(f"/proc/{process.pid}/status")
        while not done.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except (OSError, ValueError):
                pass
            done.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, stderr = process.communicate()
    done.set()
    watcher.join()
    wall = time.perf_counter() - started
    time.sleep(0.2)  # the last killed kernels exit
    reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if group is not None:
        cpu = int((group / "cpuacct.usage").read_text()) / 1e9
        with contextlib.suppress(OSError):
            group.rmdir()
    return Timed(wall, cpu, peak[0] / 1024, process.returncode, stderr)


# What each timed nbguard run does: "first" is a course's first audit (the envs built, no
# run stored: the execution cache's folder is emptied before it), "no-cache" executes every
# notebook in every env (--no-cache: no run reused, not even one env's for another).
MODES = ("first", "no-cache")


def nbguard_argv(
    course: Path, cache: Path, report: Path, jobs: int | None, mode: str = "first"
) -> list[str]:
    argv = [sys.executable, "-m", "nbguard", "run", str(course), "--cache-dir", str(cache)]
    argv += ["--report", str(report), "--allow-changed"]
    argv += ["--no-cache"] if mode == "no-cache" else []
    return argv + (["--jobs", str(jobs)] if jobs else [])


def run_nbguard(
    course: Path, cache: Path, report: Path, jobs: int | None, mode: str = "first"
) -> Timed:
    # The stored runs go (the execution cache's savings on a second audit are
    # benchmarks/rerun.py's to measure); the envs stay.
    shutil.rmtree(cache / "runs", ignore_errors=True)
    result = timed(nbguard_argv(course, cache, report, jobs, mode))
    if result.returncode not in (0, 1):
        raise SystemExit(f"nbguard failed ({result.returncode}): {result.stderr[-800:]}")
    return result


def executions(report: Path) -> tuple[int, int]:
    """The runs in the report, and how many of them were taken from another env's run."""
    notebooks = json.loads(report.read_text(encoding="utf-8"))["notebooks"]
    runs = [run for nb in notebooks for run in nb["runs"].values()]
    return len(runs), sum(run.get("reused_from") is not None for run in runs)


def bench_venvs(report: Path, work: Path) -> dict[str, Path]:
    """A venv per env of the report, with that env's exact packages, nbmake and xdist."""
    envs = json.loads(report.read_text(encoding="utf-8"))["envs"]
    pythons: dict[str, Path] = {}
    for name, env in envs.items():
        venv = work / f"venv-{name}"
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run(["uv", "venv", "-q", "--python", env["python"], str(venv)], check=True)
            pins = work / f"pins-{name}.txt"
            lines = [f"{package}=={version}" for package, version in env["packages"].items()]
            pins.write_text("\n".join(lines) + "\n", encoding="utf-8")
            subprocess.run(
                ["uv", "pip", "install", "-q", "--compile-bytecode", "--python", str(python),
                 "-r", str(pins), "nbmake", "pytest-xdist"],
                check=True,
            )  # fmt: skip
        pythons[name] = python
    return pythons


def run_nbmake(python: Path, course: Path, workers: int) -> Timed:
    # nbmake runs each notebook where it lies and writes nothing back (no --overwrite).
    argv = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake"]
    argv += ["-n", str(workers), str(course)]
    result = timed(argv, cwd=course)
    if result.returncode not in (0, 1):
        raise SystemExit(f"nbmake failed ({result.returncode}): {result.stderr[-800:]}")
    return result


def sweep(course: Path, cache: Path, report: Path, jobs: list[int], reps: int) -> int:
    """nbguard alone at several --jobs, alternating, medians: which default measures best."""
    walls: dict[int, list[float]] = {n: [] for n in jobs}
    cpus: dict[int, list[float]] = {n: [] for n in jobs}
    for _ in range(reps):
        for n in jobs:
            result = run_nbguard(course, cache, report, n)
            walls[n].append(result.wall_s)
            cpus[n].append(result.cpu_s)
            print(f"--jobs {n}: {result.wall_s:.1f} s, CPU {result.cpu_s:.1f} s", flush=True)
    for n in jobs:
        print(
            f"--jobs {n}: median {statistics.median(walls[n]):.1f} s, "
            f"CPU {statistics.median(cpus[n]):.1f} s (of {reps})"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=Path, help="an existing course instead of the corpus")
    parser.add_argument("--reps", type=int, default=3, help="alternating runs of each tool")
    parser.add_argument("--jobs", type=int, help="nbguard's --jobs (default: nbguard's own)")
    parser.add_argument("--nbmake-workers", type=int, default=4)
    parser.add_argument(
        "--sweep", help="only nbguard, at each of these --jobs (e.g. 2,4,6,8), alternating"
    )
    parser.add_argument(
        "--mode", choices=MODES, default="first", help="what each timed nbguard run does"
    )
    parser.add_argument("--rss-notebooks", type=int, default=200, help="0: skip the RSS run")
    parser.add_argument("--work", type=Path, help="keep corpus, venvs and cache here")
    parser.add_argument("--cache-dir", type=Path, help="nbguard's env cache (default: in --work)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nbguard-corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = args.cache_dir or work / "cache"
    course = args.course or write_corpus(work / "corpus", 10, 10, 10)
    cores = os.cpu_count() or 1
    adopt_orphans()
    report = work / "report.json"

    print(f"course {course}, {cores} cores; building envs (untimed)…", flush=True)
    run_nbguard(course, cache, report, args.jobs)
    if args.sweep:
        return sweep(course, cache, report, [int(n) for n in args.sweep.split(",")], args.reps)
    venvs = bench_venvs(report, work)
    ours: list[Timed] = []
    theirs: list[float] = []
    for rep in range(args.reps):
        ours.append(run_nbguard(course, cache, report, args.jobs, args.mode))
        total, reused = executions(report)
        per_env = [run_nbmake(python, course, args.nbmake_workers) for python in venvs.values()]
        theirs.append(sum(result.wall_s for result in per_env))
        their_cpu = sum(result.cpu_s for result in per_env)
        limit = ours[-1].cpu_s / cores
        print(
            f"rep {rep + 1}: nbguard {ours[-1].wall_s:.1f} s (CPU {ours[-1].cpu_s:.1f} s, "
            f"limit {limit:.1f} s, {ours[-1].wall_s / limit:.2f}x; {reused} of {total} runs "
            f"taken from another env's; load "
            f"{os.getloadavg()[0]:.1f}); nbmake -n {args.nbmake_workers} x {len(venvs)} envs "
            f"{theirs[-1]:.1f} s ({', '.join(f'{r.wall_s:.1f}' for r in per_env)}; "
            f"CPU {their_cpu:.1f} s)",
            flush=True,
        )
    wall = statistics.median(result.wall_s for result in ours)
    limit = statistics.median(result.cpu_s / cores for result in ours)
    nbmake = statistics.median(theirs)
    jobs = args.jobs or "default"
    print(f"nbguard run (--jobs {jobs}, {args.mode}), median of {args.reps}: {wall:.1f} s")
    print(f"nbmake -n {args.nbmake_workers}, once per env, median: {nbmake:.1f} s")
    print(f"nbguard / nbmake: {wall / nbmake:.2f}x")
    print(f"nbguard / CPU-bound limit ({limit:.1f} s on {cores} cores): {wall / limit:.2f}x")
    # Rep by rep (each against its own CPU seconds): on a shared machine the best rep is the
    # one least disturbed by other work.
    ratios = [result.wall_s / (result.cpu_s / cores) for result in ours]
    print(
        f"per rep: best {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x "
        f"(load now {os.getloadavg()[0]:.1f})"
    )

    if args.rss_notebooks:
        many = work / "many"
        shutil.rmtree(many, ignore_errors=True)
        write_corpus(many, args.rss_notebooks, 0, 0)
        shutil.copy(course / "requirements.txt", many / "requirements.txt")
        shutil.copy(course / "requirements.in", many / "requirements.in")
        result = run_nbguard(many, cache, work / "many-report.json", args.jobs)
        print(
            f"{args.rss_notebooks} trivial notebooks x 2 envs: {result.wall_s:.1f} s, "
            f"peak RSS of nbguard itself {result.peak_rss_mb:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
