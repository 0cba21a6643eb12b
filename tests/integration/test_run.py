"""Integration tier beyond the demo course: faults inside notebooks, interruption, a newer
Python for the upcoming env, the pip-tools backend, the course's own package."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbguard import cli
from nbguard.envs import interpreters
from nbguard.errors import InterpreterNotFound
from tests.support.courses import DEMO_COURSE, make_course, snapshot
from tests.support.procs import live_kernels
from tests.support.wheels import kernel_wheelhouse, offline_args

EXPECTED: dict[str, Any] = json.loads((DEMO_COURSE / "EXPECTED.json").read_text())


def _report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _by_path(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {nb["path"]: nb for nb in report["notebooks"]}


def test_timeout_and_dead_kernel_are_reported_and_the_run_completes(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    course = make_course(
        tmp_path,
        {
            "loop.ipynb": ["print('start')", "while True:\n    pass", "print('never')"],
            "die.ipynb": ["import os", "os._exit(3)"],
            "fine.ipynb": ["import wobble\nprint(wobble.mean([1, 2, 3]))"],
        },
        fixture_wheels,
    )
    report_path = tmp_path / "r.json"
    args = [
        "run",
        str(course),
        *offline_args(env_cache),
        "--timeout",
        "3",
        "--report",
        str(report_path),
    ]
    assert cli.main(args) == 0  # failing the same way in both envs is not a regression
    nbs = _by_path(_report(report_path))
    for env in ("locked", "upcoming"):
        assert nbs["loop.ipynb"]["runs"][env]["status"] == "timeout"
        assert nbs["loop.ipynb"]["runs"][env]["error"]["cell"] == 2
        assert nbs["die.ipynb"]["runs"][env]["status"] == "dead-kernel"
        assert nbs["die.ipynb"]["runs"][env]["error"]["cell"] == 2
    assert nbs["loop.ipynb"]["verdict"] == "already-broken"
    assert nbs["die.ipynb"]["verdict"] == "already-broken"
    assert nbs["fine.ipynb"]["verdict"] == "ok"
    # --strict makes already-broken notebooks fail the run.
    assert cli.main([*args, "--strict"]) == 1


def test_course_package_is_importable_and_data_paths_are_relative(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    course = make_course(
        tmp_path,
        {
            "units/lesson.ipynb": [
                "from physkit.consts import G\nprint(G)",
                "print(open('table.txt').read())",
            ]
        },
        fixture_wheels,
    )
    (course / "physkit").mkdir()
    (course / "physkit" / "__init__.py").write_text("")
    (course / "physkit" / "consts.py").write_text("G = 9.81\n")
    (course / "units" / "table.txt").write_text("length,period\n")
    report_path = tmp_path / "r.json"
    code = cli.main(["run", str(course), *offline_args(env_cache), "--report", str(report_path)])
    nb = _by_path(_report(report_path))["units/lesson.ipynb"]
    assert nb["runs"]["locked"]["status"] == "ok", nb["runs"]["locked"]
    assert nb["verdict"] == "ok"
    assert code == 0


def _kernel_processes(marker: str) -> list[int]:
    """PIDs of live kernels whose command line mentions `marker`."""
    return sorted(live_kernels(marker=marker))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts processes through /proc (Linux)")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_writes_the_finished_part_and_leaves_no_kernel(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path, sig: signal.Signals, code: int
) -> None:
    course = make_course(
        tmp_path,
        {
            "a_quick.ipynb": ["print(1)"],
            "b_slow.ipynb": ["import time\ntime.sleep(120)"],
        },
        fixture_wheels,
    )
    report_path = tmp_path / "r.json"
    argv = [sys.executable, "-m", "nbguard", "run", str(course), *offline_args(env_cache)]
    argv += ["--report", str(report_path), "--jobs", "4"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    envs_dir = str(env_cache / "envs")
    deadline = time.monotonic() + 120
    # Wait until both slow kernels run (the quick ones are done by then, or nearly).
    while len(_kernel_processes(envs_dir)) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err
    report = _report(report_path)
    assert report["interrupted"] is True
    assert "b_slow.ipynb" not in _by_path(report)
    deadline = time.monotonic() + 10
    while _kernel_processes(envs_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _kernel_processes(envs_dir) == []


def test_upcoming_env_on_a_newer_python(demo_course: Path, env_cache: Path, tmp_path: Path) -> None:
    current = f"{sys.version_info[0]}.{sys.version_info[1]}"
    newer = f"{sys.version_info[0]}.{sys.version_info[1] + 1}"
    try:
        interpreters.find(newer)
    except InterpreterNotFound:
        pytest.skip(f"no Python {newer} on this machine to be the upcoming interpreter")
    report_path = tmp_path / "r.json"
    args = [
        "run",
        str(demo_course),
        *offline_args(env_cache),
        "--find-links",
        str(kernel_wheelhouse(newer)),
    ]
    args += ["--env-python", f"upcoming={newer}", "--report", str(report_path)]
    assert cli.main(args) == 1
    report = _report(report_path)
    assert report["envs"]["locked"]["python"].startswith(current + ".")
    assert report["envs"]["upcoming"]["python"].startswith(newer + ".")
    assert {nb["path"]: nb["verdict"] for nb in report["notebooks"]} == EXPECTED["notebooks"]


def test_pip_tools_backend_gives_the_same_verdicts(
    demo_course: Path, env_cache: Path, tmp_path: Path
) -> None:
    report_path = tmp_path / "r.json"
    args = ["run", str(demo_course), *offline_args(env_cache), "--resolver", "pip-tools"]
    assert cli.main([*args, "--report", str(report_path)]) == 1
    report = _report(report_path)
    assert report["envs"]["locked"]["packages"]["nbguard-demo-wobble"] == "1.0"
    assert report["envs"]["upcoming"]["packages"]["nbguard-demo-wobble"] == "2.0"
    assert {nb["path"]: nb["verdict"] for nb in report["notebooks"]} == EXPECTED["notebooks"]


def test_run_without_network_or_config_uses_the_defaults(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nbguard run` from inside a course with no arguments at all."""
    course = make_course(
        tmp_path, {"nb.ipynb": ["import wobble\nwobble.Curve([(0, 1), (1, 2)])"]}, fixture_wheels
    )
    monkeypatch.chdir(course)
    monkeypatch.setenv("NBGUARD_CACHE_DIR", str(env_cache))
    (course / "nbguard.toml").write_text(
        f'find-links = ["{fixture_wheels}", "{kernel_wheelhouse()}"]\nno-index = true\n'
    )
    assert cli.main(["run"]) == 1  # Curve's repr changed: `changed` fails the run
    report = _report(course / "nbguard-report.json")
    assert _by_path(report)["nb.ipynb"]["verdict"] == "changed"
    assert cli.main(["run", "--allow-changed", "--report", str(tmp_path / "r.json")]) == 0


def test_course_package_installed_for_the_kernels_leaves_env_and_course_untouched(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    course = make_course(
        tmp_path,
        {"lessons/lesson.ipynb": ["import physkit\nprint(physkit.G)"]},
        fixture_wheels,
    )
    (course / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "physkit"\nversion = "0.1"\n'
        '[tool.setuptools]\npackages = ["physkit"]\n'
    )
    (course / "physkit").mkdir()
    (course / "physkit" / "__init__.py").write_text("G = 9.81\n")
    before = snapshot(course)
    report_path = tmp_path / "r.json"
    args = ["run", str(course), *offline_args(env_cache), "--report", str(report_path)]
    # Without the course's code, the notebook fails as it would for a student without setup.
    cli.main([*args, "--course-code", "none"])
    error = _by_path(_report(report_path))["lessons/lesson.ipynb"]["runs"]["locked"]["error"]
    assert error["ename"] == "ModuleNotFoundError"
    assert cli.main([*args, "--course-code", "install"]) == 0
    nb = _by_path(_report(report_path))["lessons/lesson.ipynb"]
    assert nb["verdict"] == "ok", nb["runs"]
    # The build happened in a scratch copy: no build/ or *.egg-info in the course.
    assert snapshot(course) == before
    # The cached envs do not hold the course's package.
    assert not list((env_cache / "envs").glob("*/lib/python*/site-packages/physkit"))


def test_baseline_stored_compares_a_fresh_run_with_the_saved_outputs(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    """For a course without a lock file: the outputs in git are the baseline."""
    course = make_course(tmp_path, {}, fixture_wheels)
    (course / "requirements.txt").unlink()  # only the loose requirements.in

    def saved(name: str, source: str, output: str | None) -> None:
        cell = new_code_cell(source, execution_count=1 if output is not None else None)
        if output is not None:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
        nbformat.write(new_notebook(cells=[new_markdown_cell("# n"), cell]), course / name)

    # Saved last semester with wobble 1.0: Curve printed as "Curve(n=2)".
    saved("curve.ipynb", "import wobble\nprint(wobble.Curve([(0, 1), (1, 2)]))", "Curve(n=2)\n")
    saved("mean.ipynb", "import wobble\nprint(wobble.mean([1, 2, 3]))", "2.0\n")
    saved("cleared.ipynb", "print('no outputs kept')", None)
    report_path = tmp_path / "r.json"
    args = ["run", str(course), *offline_args(env_cache), "--baseline", "stored"]
    assert cli.main([*args, "--report", str(report_path)]) == 1
    report = _report(report_path)
    assert set(report["envs"]) == {"upcoming"}  # one env: today's releases
    nbs = _by_path(report)
    assert nbs["curve.ipynb"]["verdict"] == "changed"
    assert nbs["curve.ipynb"]["changes"][0]["before"].strip().startswith("Curve(n=2)")
    assert nbs["mean.ipynb"]["verdict"] == "ok"
    assert nbs["cleared.ipynb"]["verdict"] == "skipped"
    assert "saved without" in nbs["cleared.ipynb"]["runs"]["stored"]["reason"]


def test_tolerance_and_replacements_from_the_command_line_reach_the_comparison(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    course = make_course(tmp_path, {}, fixture_wheels)
    cell = new_code_cell("import socket\nprint(0.3, 'on', 'host-' + 'b')", execution_count=1)
    # Saved on another machine, with a float printed a hair differently.
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="0.3000001 on host-a\n")]
    nbformat.write(new_notebook(cells=[cell]), course / "nb.ipynb")
    report_path = tmp_path / "r.json"
    args = ["run", str(course), *offline_args(env_cache), "--baseline", "stored"]
    args += ["--report", str(report_path)]

    assert cli.main([*args, "--replace", r"host-\w=>host"]) == 0  # 3e-7 is within 1e-6
    assert cli.main([*args, "--replace", r"host-\w=>host", "--tolerance", "1e-9"]) == 1
    change = _by_path(_report(report_path))["nb.ipynb"]["changes"][0]
    assert change["kind"] == "value"
    assert "rel_tol=1e-09" in change["applied"]
    assert cli.main(args) == 1  # without the replacement the host name differs
    assert _by_path(_report(report_path))["nb.ipynb"]["changes"][0]["kind"] == "text"


def test_keep_going_reports_every_independent_break_without_the_cascade(
    tmp_path: Path, fixture_wheels: Path, env_cache: Path
) -> None:
    course = make_course(
        tmp_path,
        {
            "nb.ipynb": [
                "import wobble",
                "m = wobble.old_mean([1.0, 2.0])",  # removed in 2.0
                "print(m * 2)",  # NameError in 2.0: a cascade, not a new break
                "wobble.median([])",  # ValueError in 2.0 (AttributeError in 1.0): its own
                "print('end')",
            ]
        },
        fixture_wheels,
    )
    report_path = tmp_path / "r.json"
    args = ["run", str(course), *offline_args(env_cache), "--keep-going"]
    assert cli.main([*args, "--report", str(report_path)]) == 1
    upcoming = _by_path(_report(report_path))["nb.ipynb"]["runs"]["upcoming"]
    assert (upcoming["error"]["cell"], upcoming["error"]["ename"]) == (2, "AttributeError")
    assert [(e["cell"], e["ename"]) for e in upcoming["later_errors"]] == [(4, "ValueError")]


@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_a_hash_pinned_lock_is_installed_with_its_hashes_checked(
    tmp_path: Path,
    fixture_wheels: Path,
    env_cache: Path,
    capsys: pytest.CaptureFixture[str],
    resolver: str,
) -> None:
    course = make_course(tmp_path, {"nb.ipynb": ["import wobble\nprint(wobble.mean([1, 2]))"]},
                         fixture_wheels)  # fmt: skip
    wheel = fixture_wheels / "nbguard_demo_wobble-1.0-py3-none-any.whl"
    good = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lock = course / "requirements.txt"
    report = tmp_path / "r.json"

    argv = ["run", str(course), *offline_args(env_cache), "--report", str(report)]
    argv += ["--resolver", resolver]

    lock.write_text(f"nbguard-demo-wobble==1.0 \\\n    --hash=sha256:{'0' * 64}\n")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "baseline env 'locked' cannot be built" in err
    assert "hash" in err.lower() and "0" * 64 in err

    lock.write_text(f"nbguard-demo-wobble==1.0 \\\n    --hash=sha256:{good}\n")
    assert cli.main(argv) == 0
