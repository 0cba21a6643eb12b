"""Kernel tier: what a hostile notebook tries against the machine, in the kernel's sandbox:
nothing it starts outlives it, the course and the cached env stay byte-identical, nbguard's
environment is out of its sight, and where namespaces are forbidden nbguard says so."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard.execute import ExecOptions, execute_notebook
from nbguard.execute import sandbox as sandbox_module
from nbguard.model import Notebook, NotebookReport, NotebookRun, Report
from nbguard.report import json_report
from tests.support.wheels import unavailable

PYTHON = Path(sys.executable)
# The dev venv's packages (ipykernel, pip), which `cached_env` reaches through a .pth: the
# sandbox shows a kernel only what its env needs, and that .pth is the test's own arrangement
# (with the checkout under /tmp, as some CI machines have it, /tmp is the sandbox's own).
DEV_SITE = Path(next(p for p in sys.path if p.endswith("site-packages")))
TOKEN = "ghp_sandboxsecret4711"
BWRAP = "bwrap: read-only system and env, private home/tmp, pid namespace"

Runner = Callable[..., NotebookRun]


@pytest.fixture(autouse=True)
def _sandbox_available() -> None:
    problem, _ = sandbox_module._bwrap()
    if problem is not None:
        unavailable(f"no kernel sandbox on this machine: {problem}")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "data").mkdir(parents=True)
    (root / "data" / "values.csv").write_text("1,2,3\n")
    return root


@pytest.fixture
def run(course: Path, tmp_path: Path) -> Runner:
    """Execute a notebook of the given code cells, in this interpreter unless told otherwise."""
    counter = iter(range(1000))

    def runner(
        *sources: str, python: Path = PYTHON, options: ExecOptions | None = None
    ) -> NotebookRun:
        nb = new_notebook(cells=[new_code_cell(source) for source in sources])
        (course / "nb.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        notebook = Notebook("nb.ipynb", "0" * 64, "python3", "python")
        return execute_notebook(
            notebook,
            course,
            "upcoming",
            python,
            replace(options or ExecOptions(cell_timeout=30), readable=(DEV_SITE,)),
            tmp_path / f"w{next(counter)}",
        )

    return runner


def _printed(result: NotebookRun) -> str:
    return "".join(
        text for cell in result.cells for out in cell.outputs for text in out.data.values()
    )


def _tree(root: Path) -> dict[str, str]:
    """Relative path → what it is: a file's sha256, a link's target, "dir"; links not followed."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = "-> " + str(path.readlink())
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_what_a_notebook_starts_does_not_outlive_it(run: Runner) -> None:
    marker = str(3000 + secrets.randbelow(5000))
    result = run(
        "import os, subprocess, sys",
        f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)",
        f"os.system('setsid sleep {marker}.5 &')",
        # A double fork: the grandchild is orphaned at once, as a daemon would be.
        f"if os.fork() == 0:\n    if os.fork() == 0:\n        os.setsid()\n"
        f"        os.execvp('sleep', ['sleep', '{marker}.25'])\n    os._exit(0)",
        "import time; time.sleep(0.5); print('started')",
    )

    assert result.status == "ok", result.reason
    assert result.isolation == BWRAP
    assert "started" in _printed(result)
    deadline = time.monotonic() + 5
    while _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(f"sleep {marker}") == []


def test_runs_of_one_env_share_a_cache_folder_but_not_a_home(run: Runner, tmp_path: Path) -> None:
    """matplotlib builds its font list once per env and audit, not in every kernel."""
    shared = tmp_path / "scratch" / "home-cache" / "upcoming"
    options = ExecOptions(cell_timeout=30, home_cache=shared)
    write = (
        "import os, pathlib\n"
        "pathlib.Path(os.environ['XDG_CACHE_HOME'], 'fontlist.json').write_text('built')\n"
        "pathlib.Path(os.environ['HOME'], 'mine').write_text('one run')"
    )
    read = (
        "import os, pathlib\n"
        "print(pathlib.Path(os.environ['XDG_CACHE_HOME'], 'fontlist.json').read_text())\n"
        "print(sorted(os.listdir(os.environ['HOME'])))"
    )

    first, second = run(write, options=options), run(read, options=options)

    assert first.status == second.status == "ok", (first.reason, second.reason)
    assert second.isolation == BWRAP
    assert "built" in _printed(second)
    assert "mine" not in _printed(second)  # the home stays each run's own
    assert (shared / "fontlist.json").read_text() == "built"


def test_a_notebook_cannot_write_to_the_course_it_was_copied_from(
    run: Runner, course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(course)  # nbguard started in the course, as a user would
    monkeypatch.setenv("PWD", str(course))
    before = _tree(course)
    result = run(
        "import os\n"
        "targets = [os.environ.get('PWD', ''), f'/proc/{os.getppid()}/cwd',\n"
        f"           os.path.realpath(f'/proc/{{os.getppid()}}/cwd'), {str(course)!r}]\n"
        "for base in targets:\n"
        "    try:\n"
        "        with open(os.path.join(base, 'data', 'values.csv'), 'w') as f:\n"
        "            f.write('pwned')\n"
        "        with open(os.path.join(base, 'planted.py'), 'w') as f:\n"
        "            f.write('pwned')\n"
        "    except OSError as exc:\n"
        "        print('refused', base, type(exc).__name__)",
        "print(open('data/values.csv').read())",  # its own copy, which it may change
    )

    assert result.status == "ok", result.reason
    assert result.isolation == BWRAP
    after = {key: value for key, value in _tree(course).items() if key != "nb.ipynb"}
    assert after == {key: value for key, value in before.items() if key != "nb.ipynb"}


def test_nbguards_environment_is_out_of_the_notebooks_sight(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    result = run(
        "import os, glob\n"
        "found = []\n"
        "for path in [f'/proc/{os.getppid()}/environ', *glob.glob('/proc/*/environ')]:\n"
        "    try:\n"
        "        data = open(path, 'rb').read().decode(errors='replace')\n"
        "    except OSError:\n"
        "        continue\n"
        "    for item in data.split('\\0'):\n"
        "        if item.startswith('GITHUB_TOKEN='):\n"
        "            value = item.partition('=')[2]\n"
        "            found += [value, value[::-1]]\n"
        "print('found', found)\n"
        "raise ValueError(' '.join(found) or 'nothing')",
    )

    assert result.isolation == BWRAP
    assert result.status == "error" and result.error is not None
    assert result.error.evalue == "nothing"
    report = Report(
        course="course",
        baseline="locked",
        envs={},
        notebooks=(NotebookReport("nb.ipynb", "broken", {"upcoming": result}),),
        created="2026-01-01T00:00:00Z",
        duration_s=1.0,
        settings={},
    )
    text = json.dumps(json_report.to_json(report)) + _printed(result)
    assert TOKEN not in text and TOKEN[::-1] not in text
    assert json_report.to_json(report)["notebooks"][0]["runs"]["upcoming"]["isolation"] == BWRAP


@pytest.fixture
def cached_env(tmp_path: Path) -> Iterator[Path]:
    """A throwaway venv (the dev venv's packages through a .pth, so it has ipykernel and pip)
    holding one installed package of its own, `victim`."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    (site,) = env.glob("lib/python3*/site-packages")
    (site / "dev-packages.pth").write_text(f"{DEV_SITE}\n")
    (site / "victim.py").write_text("VALUE = 42\n")
    info = site / "victim-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: victim\nVersion: 1.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text(
        "victim.py,,\nvictim-1.0.dist-info/METADATA,,\nvictim-1.0.dist-info/INSTALLER,,\n"
        "victim-1.0.dist-info/RECORD,,\n"
    )
    yield env / "bin" / "python"


def test_a_notebook_cannot_change_the_cached_env(run: Runner, cached_env: Path) -> None:
    env = cached_env.parent.parent
    before = _tree(env)
    result = run(
        "import sys, subprocess, victim, os\n"
        "print(subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '-y', 'victim'],\n"
        "                     capture_output=True, text=True).returncode)",
        "import victim, os\n"
        "for folder in {os.path.dirname(victim.__file__), *__import__('site').getsitepackages()}:\n"
        "    try:\n"
        "        with open(os.path.join(folder, 'zz-planted.pth'), 'w') as f:\n"
        '            f.write(\'import os; os.environ["PLANTED"] = "1"\\n\')\n'
        "    except OSError as exc:\n"
        "        print('refused', type(exc).__name__)\n"
        "    try:\n"
        "        os.remove(victim.__file__)\n"
        "    except OSError as exc:\n"
        "        print('refused', type(exc).__name__)",
        python=cached_env,
    )

    assert result.status == "ok", result.reason
    assert result.isolation == BWRAP
    assert _tree(env) == before
    after = run(
        "import victim, os\nprint(victim.VALUE, os.environ.get('PLANTED'))", python=cached_env
    )
    assert after.status == "ok", after.reason
    assert _printed(after) == "42 None\n"


def test_a_symlink_loop_in_the_course_runs_at_once(run: Runner, course: Path) -> None:
    (course / "a").symlink_to(".")
    (course / "b").symlink_to(".")
    before = _tree(course)
    started = time.monotonic()

    result = run("import os\nprint(sorted(os.listdir('.')), os.path.islink('a'))")

    assert time.monotonic() - started < 30
    assert result.status == "ok", result.reason
    assert _printed(result) == "['a', 'b', 'data', 'nb.ipynb'] True\n"
    assert {k: v for k, v in _tree(course).items() if k != "nb.ipynb"} == before


def test_offline_in_the_sandbox_has_no_network(run: Runner) -> None:
    result = run(
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=5)",
        options=ExecOptions(cell_timeout=30, offline=True),
    )

    assert result.isolation == BWRAP + ", no network"
    assert result.status == "error" and result.error is not None
    assert result.error.ename in ("ConnectionRefusedError", "OSError")


def test_where_namespaces_are_forbidden_the_kernel_runs_as_before_and_says_why(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbidden = ("namespaces not allowed here (bwrap: No permissions to create new namespace)", "")
    monkeypatch.setattr(sandbox_module, "_bwrap", lambda: forbidden)

    result = run("print('still runs')")

    assert result.status == "ok"
    assert _printed(result) == "still runs\n"
    assert result.isolation == "none: " + forbidden[0]
    assert sandbox_module.note(result.isolation) == (
        "kernels run without a sandbox: " + forbidden[0]
    )


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel of module `name` with VALUE = 7."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}.py": "VALUE = 7\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{file},,\n" for file in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in files.items():
            archive.writestr(file, text)
    return path


def _no_bytecode(tree: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in tree.items() if "__pycache__" not in key}


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_pip_in_a_notebook_behaves_as_for_a_student(
    run: Runner, cached_env: Path, course: Path, sandbox: bool
) -> None:
    """Also without a sandbox: the run's layer keeps pip away from the env (only Python's
    own bytecode cache may appear there then)."""
    _wheel(course / "wheels", "extra_pkg", "1.0")  # the course's own, found offline
    env = cached_env.parent.parent
    before = _tree(env)
    options = ExecOptions(cell_timeout=120, pip_overlay=True, offline=sandbox, sandbox=sandbox)

    result = run(
        "!pip install --no-index victim",
        "%pip install --no-index --find-links wheels extra-pkg",
        "import extra_pkg, victim\nprint('imported', extra_pkg.VALUE, victim.VALUE)",
        "!pip uninstall -y victim",
        "import importlib\nprint('still', importlib.reload(victim).VALUE)",
        python=cached_env,
        options=options,
    )

    printed = _printed(result)
    assert result.status == "ok", result.reason
    assert result.isolation == (
        BWRAP + ", no network" if sandbox else "none: the sandbox is turned off"
    )
    assert "Requirement already satisfied: victim" in printed
    assert "Successfully installed extra-pkg-1.0" in printed
    assert "imported 7 42" in printed and "still 42" in printed
    assert "outside environment" in printed  # pip's own words: the env is not the run's
    assert (_tree(env) if sandbox else _no_bytecode(_tree(env))) == before
    later = run("import extra_pkg", python=cached_env, options=options)  # the next notebook
    assert later.error is not None and later.error.ename == "ModuleNotFoundError"
