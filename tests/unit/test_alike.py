"""Fast tier: a run in one env stands for the run in another exactly when everything it used
of its env (as the kernel recorded it) holds the same files there, on the same interpreter;
the pipeline then executes the notebook once, and says so."""

from __future__ import annotations

import base64
import hashlib
import io
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from nbguard import pipeline, settings
from nbguard.envs.interpreters import Interpreter
from nbguard.execute import ExecOptions
from nbguard.execute.alike import differs
from nbguard.model import EnvInfo, Notebook, NotebookRun, Touched
from nbguard.report import json_report, terminal
from nbguard.settings import EnvSpec
from tests.support.fakes import PYTHON, FakeBackend, printed, write_course

SITE = "lib/python3.11/site-packages"


def install(prefix: Path, files: dict[str, str], dist: str | None = None) -> None:
    """`files` (relative to site-packages) written into the env at `prefix`; listed in a
    RECORD of `dist` when given, as an installer would."""
    site = prefix / SITE
    lines = []
    for relative, text in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        hashed = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        lines.append(f"{relative},sha256={hashed.decode()},{len(text)}")
    if dist is not None:
        record = site / f"{dist}.dist-info" / "RECORD"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text("\n".join([*lines, f"{dist}.dist-info/RECORD,,"]) + "\n")


def make_env(root: Path, name: str, python: str = sys.executable) -> EnvInfo:
    """A venv-shaped folder on `python` holding what every env here shares."""
    prefix = root / name
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(python)
    (prefix / "pyvenv.cfg").write_text(f"home = {Path(python).parent}\nversion = {PYTHON}\n")
    install(prefix, {"kernel/__init__.py": "machinery = 1\n"}, "kernel-6.0")
    install(prefix, {"_virtualenv.py": "# made by the venv tool\n", "_virtualenv.pth": "x\n"})
    return EnvInfo(name, PYTHON, {}, f"fp-{name}", interpreter=prefix / "bin" / "python")


def ran(touched: Touched | None, status: str = "ok") -> NotebookRun:
    run = replace(printed("nb.ipynb", "locked", "hi"), reads=(), touched=touched)
    return replace(run, status="timeout") if status == "timeout" else run


@pytest.fixture
def envs(tmp_path: Path) -> tuple[EnvInfo, EnvInfo]:
    locked, upcoming = make_env(tmp_path, "locked"), make_env(tmp_path, "upcoming")
    install(tmp_path / "locked", {"wobble/__init__.py": "def mean(): return 1\n"}, "wobble-1.0")
    install(tmp_path / "upcoming", {"wobble/__init__.py": "def mean(): return 2\n"}, "wobble-2.0")
    return locked, upcoming


def test_a_run_that_used_only_what_both_envs_share_stands_for_both(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    touched = Touched(entries=("kernel", "_virtualenv.py"), names=("kernel", "json", "os"))
    assert differs(ran(touched), *envs) is None


def test_a_run_that_imported_the_moved_package_does_not(envs: tuple[EnvInfo, EnvInfo]) -> None:
    touched = Touched(entries=("kernel", "wobble"), names=("kernel", "wobble"))
    assert differs(ran(touched), *envs) == "wobble differs"


def test_a_name_looked_up_in_vain_that_the_other_env_provides_counts(
    tmp_path: Path, envs: tuple[EnvInfo, EnvInfo]
) -> None:
    # `try: import fastpath except ImportError` in locked, where only upcoming has it.
    install(tmp_path / "upcoming", {"fastpath.py": "FAST = True\n"}, "fastpath-1.0")
    assert differs(ran(Touched(entries=("kernel",), names=("fastpath",))), *envs) == (
        "fastpath.py differs"
    )
    assert differs(ran(Touched(entries=("kernel",), names=("kernel",))), *envs) is None


def test_a_file_no_record_lists_is_compared_by_its_contents(
    tmp_path: Path, envs: tuple[EnvInfo, EnvInfo]
) -> None:
    install(tmp_path / "locked", {"loose/data.txt": "1\n"})
    install(tmp_path / "upcoming", {"loose/data.txt": "2\n"})
    install(tmp_path / "upcoming", {"kernel/__pycache__/x.cpython-311.pyc": "bytecode"})
    assert differs(ran(Touched(entries=("loose",))), *envs) == "loose differs"
    assert differs(ran(Touched(entries=("kernel",))), *envs) is None  # bytecode aside


def test_a_startup_file_that_differs_counts_even_untouched(
    tmp_path: Path, envs: tuple[EnvInfo, EnvInfo]
) -> None:
    install(tmp_path / "upcoming", {"hook.pth": "import wobble\n"}, "hooked-1.0")
    assert differs(ran(Touched(entries=("kernel",))), *envs) == "hook.pth differs"


def test_env_files_outside_site_packages_are_compared(
    tmp_path: Path, envs: tuple[EnvInfo, EnvInfo]
) -> None:
    for name, text in (("locked", "a"), ("upcoming", "b")):
        path = tmp_path / name / "share" / "conf.json"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    assert differs(ran(Touched(env_files=("share/conf.json",))), *envs) == (
        "share/conf.json differs"
    )


@pytest.mark.parametrize(
    ("run", "why"),
    [
        (ran(Touched(anything="it started a process (subprocess.Popen)")), "started a process"),
        (ran(Touched(anything="it listed the installed distributions")), "listed"),
        (ran(None), "no whole record"),
        (ran(Touched(), status="timeout"), "no whole record"),
        (replace(ran(Touched()), reads=None), "no whole record"),
    ],
)
def test_runs_that_may_depend_on_anything_never_stand_for_another(
    envs: tuple[EnvInfo, EnvInfo], run: NotebookRun, why: str
) -> None:
    assert why in (differs(run, *envs) or "")


def test_another_interpreter_is_another_run(tmp_path: Path) -> None:
    other = tmp_path / "other-python"
    other.symlink_to(sys.executable)  # the same binary by another path still counts the same
    locked = make_env(tmp_path, "locked")
    same = make_env(tmp_path, "same", str(other))
    newer = make_env(tmp_path, "newer", "/usr/bin/env")  # stands for another interpreter
    assert differs(ran(Touched()), locked, same) is None
    assert differs(ran(Touched()), locked, newer) == "the envs run different interpreters"


# -- in the pipeline ---------------------------------------------------------------------


class TwoEnvs(FakeBackend):
    """Envs that are folders (one package moved between them); `wobbly.ipynb` imports the
    package, `plain.ipynb` only the kernel's machinery."""

    def __init__(self, root: Path) -> None:
        super().__init__({"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}})
        self.root = root

    def build(
        self, spec: EnvSpec, interpreter: Interpreter, progress: Callable[[str], None]
    ) -> EnvInfo:
        prefix = self.root / spec.name
        if not prefix.exists():
            make_env(self.root, spec.name)
            version = self.packages[spec.name]["wobble"]
            install(prefix, {"wobble/__init__.py": f"V = {version!r}\n"}, f"wobble-{version}")
        return EnvInfo(
            spec.name,
            PYTHON,
            dict(self.packages[spec.name]),
            f"fp-{spec.name}-{self.packages[spec.name]['wobble']}",
            interpreter=prefix / "bin" / "python",
        )

    def execute(
        self, notebook: Notebook, course: Path, env: EnvInfo, options: ExecOptions, workdir: Path
    ) -> NotebookRun:
        with self._lock:
            self.executed.append((notebook.path, env.name))
        entries = ("kernel", "wobble") if notebook.path == "wobbly.ipynb" else ("kernel",)
        shown = env.packages["wobble"] if notebook.path == "wobbly.ipynb" else "hello"
        run = printed(notebook.path, env.name, shown)
        return replace(run, reads=(), touched=Touched(entries=entries, names=entries))


def test_a_notebook_that_uses_nothing_that_moved_is_executed_once(tmp_path: Path) -> None:
    course = write_course(tmp_path, ["plain.ipynb", "wobbly.ipynb"])
    backend = TwoEnvs(tmp_path / "envs")
    (tmp_path / "envs").mkdir()
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache")})

    report = pipeline.run(config, backend=backend)

    # wobbly's runs differ, so it also runs again to tell noise from change; plain's agree.
    assert [run for run in backend.executed if run[0] == "plain.ipynb"] == [
        ("plain.ipynb", "locked")
    ]
    assert ("wobbly.ipynb", "upcoming") in backend.executed
    by_path = {nb.path: nb for nb in report.notebooks}
    assert by_path["plain.ipynb"].verdict == "ok"
    assert by_path["wobbly.ipynb"].verdict == "changed"
    runs = json_report.to_json(report)["notebooks"]
    reused = {nb["path"]: nb["runs"]["upcoming"]["reused_from"] for nb in runs}
    assert reused == {"plain.ipynb": "locked", "wobbly.ipynb": None}


def test_no_cache_executes_every_notebook_in_every_env(tmp_path: Path) -> None:
    course = write_course(tmp_path, ["plain.ipynb", "wobbly.ipynb"])
    backend = TwoEnvs(tmp_path / "envs")
    (tmp_path / "envs").mkdir()
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "cache": False})

    pipeline.run(config, backend=backend)

    first_runs = set(backend.executed)  # wobbly runs again: its runs differ
    assert first_runs == {
        (nb, env) for nb in ("plain.ipynb", "wobbly.ipynb") for env in ("locked", "upcoming")
    }


def test_the_terminal_says_how_many_runs_were_taken_from_another_env(tmp_path: Path) -> None:
    course = write_course(tmp_path, ["plain.ipynb", "wobbly.ipynb"])
    (tmp_path / "envs").mkdir()
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache")})
    report = pipeline.run(config, backend=TwoEnvs(tmp_path / "envs"))

    out = io.StringIO()
    terminal.render(json_report.to_json(report), Console(file=out, width=200, color_system=None))

    assert "1 of 4 runs taken from the locked run" in out.getvalue()


def test_a_second_audit_takes_the_stored_run_for_an_env_that_moved(tmp_path: Path) -> None:
    """The nightly case: upcoming moved overnight (a new fingerprint, nothing stored for it);
    the stored locked run of a notebook that never used what moved stands for it."""
    course = write_course(tmp_path, ["plain.ipynb", "wobbly.ipynb"])
    (tmp_path / "envs").mkdir()
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache")})
    pipeline.run(config, backend=TwoEnvs(tmp_path / "envs"))
    moved = TwoEnvs(tmp_path / "envs-2")
    (tmp_path / "envs-2").mkdir()
    moved.packages = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "3.0"}}

    report = pipeline.run(config, backend=moved)

    # (twice: its new value differs from the stored locked runs, so it runs again there)
    assert set(moved.executed) == {("wobbly.ipynb", "upcoming")}
    runs = {nb.path: nb for nb in report.notebooks}
    assert runs["wobbly.ipynb"].verdict == "changed"


def test_the_envs_configuration_and_conda_libraries_are_never_assumed_alike(
    tmp_path: Path, envs: tuple[EnvInfo, EnvInfo]
) -> None:
    config = tmp_path / "upcoming" / "etc" / "ipython" / "ipython_config.json"
    config.parent.mkdir(parents=True)
    config.write_text('{"InteractiveShell": {"autocall": 2}}')
    assert "etc/" in (differs(ran(Touched()), *envs) or "")

    conda = make_env(tmp_path / "conda", "locked"), make_env(tmp_path / "conda", "upcoming")
    (tmp_path / "conda" / "upcoming" / "conda-meta").mkdir()
    assert "conda" in (differs(ran(Touched()), *conda) or "")


def test_runs_taken_from_the_baseline_start_no_kernel_ahead(tmp_path: Path) -> None:
    """Kernels are started ahead only for runs that will take one: an upcoming run that the
    locked run stands for leaves the count of runs still to come."""
    plain = ["a.ipynb", "b.ipynb", "c.ipynb"]
    course = write_course(tmp_path, [*plain, "wobbly.ipynb"])
    (tmp_path / "envs").mkdir()
    backend = TwoEnvs(tmp_path / "envs")
    ahead: dict[str, list[int]] = {}
    execute = backend.execute

    def recording(
        notebook: Notebook, course: Path, env: EnvInfo, options: ExecOptions, workdir: Path
    ) -> NotebookRun:
        ahead.setdefault(env.name, []).append(options.ahead)
        return execute(notebook, course, env, options, workdir)

    backend.execute = recording  # type: ignore[method-assign]
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "jobs": "1"})

    pipeline.run(config, backend=backend)

    assert ahead["locked"][:4] == [3, 2, 1, 0]
    assert ahead["upcoming"] and set(ahead["upcoming"]) == {0}
