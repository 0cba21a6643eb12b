"""Fast tier: a re-run where nothing changed does no more than it must — no env's files are
walked and no kernel machinery is imported while every run comes from the execution cache;
an env is checked whole as soon as one of its runs needs a kernel; candidate Pythons are
asked at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbguard import pipeline, settings
from nbguard.envs import interpreters
from nbguard.envs.interpreters import Interpreter
from nbguard.execute.memo import code_digest
from nbguard.model import EnvInfo
from tests.support.fakes import FakeBackend, printed, write_course

NOTEBOOKS = ["a.ipynb", "b.ipynb"]
PACKAGES = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
# What only a notebook's execution needs.
KERNEL_MACHINERY = ("nbclient", "jupyter_client", "zmq", "nbformat", "papermill", "tornado")


class Checking(FakeBackend):
    """A fake backend that records which envs were checked whole before their runs."""

    def __init__(self) -> None:
        scripts = {
            (nb, env): replace(printed(nb, env, "same"), reads=())
            for nb in NOTEBOOKS
            for env in PACKAGES
        }
        super().__init__(PACKAGES, scripts)
        self.checked: list[str] = []

    def verify(self, env: EnvInfo) -> EnvInfo:
        self.checked.append(env.name)
        return env


def test_envs_are_checked_only_when_a_run_needs_a_kernel(tmp_path: Path) -> None:
    course = write_course(tmp_path, NOTEBOOKS)
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache")})
    first, nothing_changed, edited, forced = Checking(), Checking(), Checking(), Checking()

    pipeline.run(config, backend=first)
    pipeline.run(config, backend=nothing_changed)
    (course / "b.ipynb").write_text(
        nbformat.writes(new_notebook(cells=[new_code_cell("print('edited')")]))
    )
    pipeline.run(config, backend=edited)
    pipeline.run(settings.load(course, {"cache-dir": str(tmp_path / "cache"), "cache": False}),
                 backend=forced)  # fmt: skip

    assert sorted(first.checked) == ["locked", "upcoming"]
    assert nothing_changed.checked == [] and nothing_changed.executed == []
    assert sorted(edited.checked) == ["locked", "upcoming"]
    assert sorted(edited.executed) == [("b.ipynb", "locked"), ("b.ipynb", "upcoming")]
    assert sorted(forced.checked) == ["locked", "upcoming"]


_ALL_CACHED_RUN = """
import json, sys
from pathlib import Path
from nbguard import cli, envs
from nbguard.envs.interpreters import Interpreter
from nbguard.model import EnvInfo

course, cache, report = map(Path, sys.argv[1:4])
python = Interpreter(Path(sys.executable), "3.11.7", "CPython", "Linux-x86_64")
packages = {packages!r}

def build(spec, options, interp, progress):
    # The env as the env cache hands it out: resolved, reused, its files not walked.
    return EnvInfo(spec.name, "3.11.7", dict(packages[spec.name]), f"fp-{{spec.name}}",
                   interpreter=Path(sys.executable), reused=True)

envs.interpreter_for = lambda spec: python
envs.build = build
code = cli.main(["run", str(course), "--cache-dir", str(cache), "--report", str(report)])
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))
print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def test_a_run_served_from_the_cache_imports_no_kernel_machinery(tmp_path: Path) -> None:
    course = write_course(tmp_path, NOTEBOOKS)
    cache = tmp_path / "cache"
    # A first audit stores every run (the fake backend's envs have the fingerprints below).
    pipeline.run(settings.load(course, {"cache-dir": str(cache)}), backend=Checking())
    script = _ALL_CACHED_RUN.format(packages=PACKAGES, heavy=KERNEL_MACHINERY)
    report = tmp_path / "report.json"

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(course), str(cache), str(report)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"code": 0, "loaded": []}
    data = json.loads(report.read_text())
    assert all(run["cached"] for nb in data["notebooks"] for run in nb["runs"].values())


def test_a_notebooks_code_reads_the_same_with_or_without_nbformat(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Title"),
            new_code_cell("x = 1\nprint(x)", metadata={"tags": ["raises-exception"]}),
            new_code_cell("y = 2", metadata={"nbguard": {"tolerance": {"rel": 0.1}}}),
        ]
    )
    nbformat.write(nb, path)
    digest = code_digest(path)
    # The same notebook as another tool saves it: sources as whole strings, other keys around.
    data = json.loads(path.read_text())
    assert isinstance(data["cells"][1]["source"], list)  # as Jupyter writes them
    for cell in data["cells"]:
        cell["source"] = "".join(cell["source"])
    data["metadata"]["widgets"] = {"state": {}}
    path.write_text(json.dumps(data))
    as_strings = code_digest(path)
    # And in the older format, which only nbformat converts.
    old = nbformat.v4.downgrade(nbformat.from_dict(data))
    path.write_text(nbformat.writes(old, version=3))
    old_format = code_digest(path)

    assert digest is not None
    assert as_strings == digest
    assert old_format is not None


def test_candidate_pythons_are_asked_at_once_and_the_first_in_order_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    answered = threading.Barrier(3, timeout=10)  # all three asked before any answers

    def probe(executable: str) -> Interpreter | None:
        asked.append(executable)
        answered.wait()
        if executable == "/usr/bin/python3":
            return None  # e.g. a pyenv shim for a version not selected
        return Interpreter(Path(executable), "3.9.18", "CPython", "Linux-x86_64")

    monkeypatch.setattr(interpreters, "probe", probe)
    monkeypatch.setattr(
        interpreters,
        "_candidates",
        lambda wanted: iter([["/usr/bin/python3", "/opt/python3.9", "/usr/local/bin/python3.9"]]),
    )

    found = interpreters.find("3.9")

    assert found.executable == Path("/opt/python3.9")
    assert sorted(asked) == ["/opt/python3.9", "/usr/bin/python3", "/usr/local/bin/python3.9"]
